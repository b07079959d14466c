/**
 * What the CLI needs from an agent, independent of how calls travel. The implementation
 * over @vmlink/rpc is in rpc-client.ts; commands only see this interface. The wire shapes
 * are the protocol's (@vmlink/agent-protocol), shared with the agent.
 */
import type {
  AgentInfo,
  ChmodResult,
  DetachedAttachParams,
  DetachedAttachResult,
  DetachedMethodTypes,
  DetachedRecord,
  ExecExit,
  ExecRequestOptions,
  HashResult,
  ListResult,
  MkdirResult,
  MvResult,
  PartialResult,
  ProbeResult,
  RmResult,
  StatResult,
  TransferResult,
  UtimesResult,
} from '@vmlink/agent-protocol';
import type { Readable } from 'node:stream';

export type { AgentInfo, ExecResult, FileType, ListEntry, ListResult, StatResult, TransferResult } from '@vmlink/agent-protocol';

export interface WriteOptions {
  readonly mode?: number;
  readonly mtimeMs?: number;
  /** A resumable upload: the agent keeps what arrived if the transfer breaks (fs.write `resume`). */
  readonly resume?: boolean;
  /** Continue the kept part from here; its first `offset` bytes must hash to `prefixSha256`. */
  readonly offset?: number;
  readonly prefixSha256?: string;
}

/** One forwarded TCP connection in the guest: what the target sends, and its id for send(). */
export interface OpenedTcp {
  readonly id: string;
  readonly body: Readable;
}

export type ExecSignal = 'SIGINT' | 'SIGTERM' | 'SIGKILL' | 'SIGHUP' | 'SIGQUIT';

export interface ExecOptions {
  readonly stdin?: AsyncIterable<Uint8Array>;
  /**
   * exec's env (names the agent allows: --allow-env), cwd (under its --root), maxOutput (per
   * stream), pty (run on a terminal: `stdin` then carries input records, ExecInputTag).
   */
  readonly request?: Pick<ExecRequestOptions, 'env' | 'cwd' | 'maxOutput' | 'pty'>;
  readonly onStarted?: (control: { signal(name: ExecSignal): Promise<void> }) => void;
}

/** The detached-process calls with a plain reply (detached.attach streams: AgentClient.attach). */
export type DetachedCallName = 'detached.start' | 'detached.list' | 'detached.wait' | 'detached.kill';

export interface AgentClient {
  readonly uri: string;
  /** Whether the transport carries several connections to the agent at once (virtio-serial: no). */
  readonly multiConnection: boolean;
  /** True once the connection to the agent has ended (lost, idle-closed by the agent, or close()d). */
  readonly closed: boolean;
  ping(): Promise<{ time: number }>;
  info(): Promise<AgentInfo>;
  stat(path: string): Promise<StatResult>;
  list(path: string): Promise<ListResult>;
  /**
   * Streams a remote file from `offset` into `sink` (which applies backpressure by
   * resolving late). The result's sha256 is the agent's, of the whole file; the caller
   * checks it against its own (prefix included when resuming).
   */
  read(path: string, sink: (chunk: Uint8Array) => Promise<void>, onSize?: (size: number) => void, offset?: number): Promise<TransferResult>;
  /** Streams `source` (of `size` bytes hashing to `sha256`) into a remote file. */
  write(path: string, source: AsyncIterable<Uint8Array>, size: number, sha256: string, options?: WriteOptions): Promise<TransferResult>;
  hash(path: string, length: number): Promise<HashResult>;
  /** How much of a resumable upload of the file hashing to `sha256` into `path` the agent kept, and its SHA-256. */
  partial(path: string, sha256: string): Promise<PartialResult>;
  mkdir(path: string, options?: { mode?: number; parents?: boolean }): Promise<MkdirResult>;
  rm(path: string, options?: { recursive?: boolean }): Promise<RmResult>;
  mv(from: string, to: string): Promise<MvResult>;
  chmod(path: string, mode: number): Promise<ChmodResult>;
  utimes(path: string, mtimeMs: number): Promise<UtimesResult>;
  /** Does a guest TCP service accept connections? Rejects with the connect error, or a refusal. */
  probe(host: string, port: number): Promise<ProbeResult>;
  /** Opens a TCP connection in the guest (net.connect); no silence limit (a forwarded connection may idle). */
  openTcp(host: string, port: number): Promise<OpenedTcp>;
  /** Carries `source` to the forwarded connection `id`; its end half-closes the target. */
  sendTcp(id: string, source: AsyncIterable<Uint8Array>): Promise<{ bytes: number }>;
  /**
   * Opens a TCP connection in the guest that carries both directions in one request
   * (net.connect with `source` as its request body; only for agents whose
   * info.limits.streamsPerForward is 1): `source` goes to the target (its end half-closes
   * it) while the result's body is what the target sends. No silence limit.
   */
  openTcpDuplex(host: string, port: number, source: AsyncIterable<Uint8Array>): Promise<OpenedTcp>;
  /**
   * Runs a command, streaming its output to `onOutput`; `options.stdin` is streamed to its
   * stdin at the same time (flow-controlled), and `onStarted` gets a handle that sends
   * signals to its process group. Resolves with its exit record (`truncated`: the streams
   * cut at their caps). No silence limit: a command (a shell) may be quiet for long.
   */
  exec(
    command: string,
    args: readonly string[],
    onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>,
    options?: ExecOptions,
  ): Promise<ExecExit>;
  /**
   * detached.start/list/kill (under the silence watchdog), detached.wait (exempt: it is
   * quiet until the process exits or its timeoutMs passes).
   */
  detached<M extends DetachedCallName>(method: M, params: DetachedMethodTypes[M]['params']): Promise<DetachedMethodTypes[M]['result']>;
  /**
   * detached.attach: `onStarted` gets its result, `onRecord` each record of its body (the
   * next waits for it: backpressure); resolves when the body ended. No silence limit.
   * What `onRecord` resolved for is acknowledged to the agent as written out (where the
   * next attach continues); with `writtenAtExit` (onRecord only collects, and writes it
   * all out when it handles the EXIT record) only once, after EXIT.
   */
  attach(
    params: DetachedAttachParams,
    onStarted: (result: DetachedAttachResult) => void,
    onRecord: (record: DetachedRecord) => Promise<void>,
    options?: { readonly writtenAtExit?: boolean },
  ): Promise<void>;
  /** Ends the connection gracefully: what is queued goes out, at most ~500 ms. */
  close(): Promise<void>;
  /**
   * Ends the connection at once (a fatal signal: nothing may wait). Calls in flight fail
   * with ERR_VMLINK_CONNECTION_LOST; the agent sees the close (and kills the commands of
   * this connection). Idempotent.
   */
  destroy(): void;
}
