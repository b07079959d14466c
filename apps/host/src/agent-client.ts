/**
 * What the CLI needs from an agent, independent of how calls travel. The implementation
 * over @vmlink/rpc is in rpc-client.ts; commands only see this interface. The wire shapes
 * are the protocol's (@vmlink/agent-protocol), shared with the agent.
 */
import type {
  AgentInfo,
  ChmodResult,
  ExecResult,
  HashResult,
  ListResult,
  MkdirResult,
  MvResult,
  RmResult,
  StatResult,
  TransferResult,
  UtimesResult,
} from '@vmlink/agent-protocol';

export type { AgentInfo, ExecResult, FileType, ListEntry, ListResult, StatResult, TransferResult } from '@vmlink/agent-protocol';

export interface WriteOptions {
  readonly mode?: number;
  readonly mtimeMs?: number;
}

export interface AgentClient {
  readonly uri: string;
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
  mkdir(path: string, options?: { mode?: number; parents?: boolean }): Promise<MkdirResult>;
  rm(path: string, options?: { recursive?: boolean }): Promise<RmResult>;
  mv(from: string, to: string): Promise<MvResult>;
  chmod(path: string, mode: number): Promise<ChmodResult>;
  utimes(path: string, mtimeMs: number): Promise<UtimesResult>;
  exec(command: string, args: readonly string[], onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>): Promise<ExecResult>;
  close(): Promise<void>;
}
