import { DETACHED_METHODS, type DetachedMethodTypes } from './detached.js';
import { UPLOAD_RESUME_METHODS, type UploadResumeMethodTypes, type WriteResumeParams } from './upload-resume.js';

/**
 * The methods an agent serves, their params and their results: plain JSON on
 * @vmlink/rpc. Streamed bodies (fs.read, fs.write, exec) are described next to their
 * method; their byte layouts are in read-body.ts and exec-records.ts.
 */

export const METHODS = [
  'ping',
  'info',
  'fs.stat',
  'fs.list',
  'fs.read',
  'fs.write',
  'fs.hash',
  'fs.mkdir',
  'fs.rm',
  'fs.mv',
  'fs.chmod',
  'fs.utimes',
  'exec',
  'exec.stdin',
  'exec.signal',
  'net.probe',
  'net.connect',
  'net.send',
  ...DETACHED_METHODS,
  ...UPLOAD_RESUME_METHODS,
] as const;
export type MethodName = (typeof METHODS)[number];

export function isMethodName(value: unknown): value is MethodName {
  return typeof value === 'string' && (METHODS as readonly string[]).includes(value);
}

export type FileType = 'file' | 'directory' | 'symlink' | 'other';

/** Permission bits a client may set (fs.write, fs.mkdir, fs.chmod): never setuid, setgid or sticky. */
export const MAX_CLIENT_MODE = 0o777;

export interface PingResult {
  pong: true;
  time: number;
}

/** What `info` answers. */
export interface AgentInfo {
  hostname: string;
  kernel: { sysname: string; release: string; version: string; machine: string };
  uptimeSeconds: number;
  load: [number, number, number];
  memory: { totalBytes: number; freeBytes: number };
  cpus: { count: number; model: string };
  /** The guest's own AF_VSOCK CID, or null when AF_VSOCK is unavailable. */
  vsockCid: number | null;
  agent: { version: string; node: string; pid: number; aio: string; root: string | null; allowExec: string[] };
  /** The URIs the agent serves right now. */
  transports: string[];
  /** The methods this agent serves (after --allow-rpcs / --block-rpcs). */
  methods: string[];
  /** The limits a client must stay within to be served; absent from older agents. */
  limits?: AgentClientLimits;
}

/** What one client may hold at once before the agent refuses (info.limits). */
export interface AgentClientLimits {
  /** Connections at once over all clients (--max-connections). */
  maxConnections: number;
  /** Connections of one peer (uid, CID) before refusals (--max-connections-per-peer). */
  maxConnectionsPerPeer: number;
  /** Requests in flight on one connection (--max-streams); a forward holds `streamsPerForward`. */
  maxStreamsPerConnection: number;
  /** Forwarded TCP connections the memory budget carries at once (--memory-budget), over all clients. */
  maxForwards: number;
  /**
   * Requests one forwarded TCP connection holds against maxStreamsPerConnection: 1 where
   * net.connect takes the client's bytes in its own request body (no net.send; see
   * ConnectResult). Absent from older agents: 2 (net.connect + net.send), and net.connect
   * must not be sent a body (it would be dropped).
   */
  streamsPerForward?: 1;
}

/** Requests a forward holds on an agent that reports `limits` (absent: an older agent, two). */
export function streamsPerForward(limits: AgentClientLimits | undefined): 1 | 2 {
  return limits?.streamsPerForward === 1 ? 1 : 2;
}

export interface PathParams {
  /** A path under the agent's root, which clients see as `/`. */
  path: string;
}

/** fs.stat: the entry at `path`; a symlink on the way or at the end is followed (inside the root). */
export interface StatResult {
  /** The resolved path as the client sees it. */
  path: string;
  type: FileType;
  size: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  mtimeMs: number;
  /** Optional for agents older than the file-management methods. */
  nlink?: number;
  uid?: number;
  gid?: number;
}

export interface ListEntry {
  name: string;
  type: FileType;
  size: number;
  mtimeMs: number;
  /** Permission bits; optional for older agents. */
  mode?: number;
}

export interface ListResult {
  path: string;
  entries: ListEntry[];
  /** True when the directory held more than the agent lists at once. */
  truncated: boolean;
}

/**
 * fs.read `{ path, offset? }` -> `{ size, offset }`, then a body: the bytes from `offset`
 * to `size`, followed by the SHA-256 of the WHOLE file (bytes 0..size), READ_TRAILER_BYTES
 * long. A client resuming at `offset` hashes its own prefix and the rest it receives.
 */
export interface ReadParams extends PathParams {
  offset?: number;
}
export interface ReadResult {
  size: number;
  offset: number;
}

/** fs.write `{ path, size, sha256?, mode?, mtimeMs? }` + a request body of exactly `size` bytes. */
export interface WriteParams extends PathParams, WriteResumeParams {
  size: number;
  sha256?: string;
  mode?: number;
  /** Set on the file before it is renamed into place (cp keeps mtimes). */
  mtimeMs?: number;
}

export interface TransferResult {
  size: number;
  sha256: string;
}

/** fs.hash `{ path, length }` -> the SHA-256 of the first `length` bytes (cp --resume's prefix check). */
export interface HashParams extends PathParams {
  length: number;
}
export interface HashResult {
  /** The whole file's size now. */
  size: number;
  /** How many bytes were hashed: min(length, size). */
  length: number;
  sha256: string;
}

/** fs.mkdir `{ path, mode?, parents? }`: `parents` creates missing parents and accepts an existing directory. */
export interface MkdirParams extends PathParams {
  mode?: number;
  parents?: boolean;
}
export interface MkdirResult {
  path: string;
  /** False when `parents` was set and the directory existed already. */
  created: boolean;
}

/** fs.rm `{ path, recursive? }`: a symlink is removed, never followed; the root is never removed. */
export interface RmParams extends PathParams {
  recursive?: boolean;
}
export interface RmResult {
  path: string;
  /** Entries removed (files, links and directories). */
  removed: number;
}

/** fs.mv `{ from, to }`: rename(2) within the root; replaces a file at `to`, never moves the root. */
export interface MvParams {
  from: string;
  to: string;
}
export interface MvResult {
  from: string;
  to: string;
}

/** fs.chmod `{ path, mode }`: permission bits 0..0o777 (no setuid/setgid/sticky from a client). */
export interface ChmodParams extends PathParams {
  mode: number;
}
export interface ChmodResult {
  path: string;
  mode: number;
}

/** fs.utimes `{ path, mtimeMs, atimeMs? }` (atime defaults to mtime). */
export interface UtimesParams extends PathParams {
  mtimeMs: number;
  atimeMs?: number;
}
export interface UtimesResult {
  path: string;
  mtimeMs: number;
}

/**
 * exec `{ command, args?, stdin? }` -> `{ command, id }`, then a body of records
 * (exec-records.ts). With `stdin: true` the command gets a stdin pipe that `exec.stdin
 * { id }` feeds (its request body, flow-controlled; its end closes stdin); without, stdin
 * is /dev/null. `exec.signal { id, signal }` sends SIGINT, SIGTERM, SIGKILL, SIGHUP or
 * SIGQUIT to the command's process group. Ids are valid on the connection that ran exec.
 */
export interface ExecParams {
  command: string;
  args?: string[];
  stdin?: boolean;
}
export interface ExecStarted {
  command: string;
  id: string;
}
export interface ExecStdinParams {
  id: string;
}
export interface ExecSignalParams {
  id: string;
  signal: 'SIGINT' | 'SIGTERM' | 'SIGKILL' | 'SIGHUP' | 'SIGQUIT';
}

export interface ExecResult {
  /** The exit code, or null when a signal ended the process. */
  exitCode: number | null;
  signal: string | null;
}

/** A TCP target inside the guest, as `--allow-forward HOST:PORT` allows it. */
export interface NetTarget {
  host: string;
  port: number;
}

/** net.probe: does a guest service accept connections? `{ host, port, ms }`, or the connect error (ECONNREFUSED...). */
export interface ProbeResult extends NetTarget {
  ms: number;
}

/**
 * Port forwarding, one TCP connection in the guest per `net.connect`: its result
 * `{ id }` comes first, then its response body is what the target sends (ends when the
 * target ends). The client's bytes travel one of two ways:
 *
 * - In net.connect's own request body (agents whose info.limits.streamsPerForward is 1):
 *   one request carries both directions, so a forward is one stream of --max-streams.
 *   The body's end half-closes the target's side; the request is over once both
 *   directions are (the target's end may come first: the body flows on).
 * - `net.send { id }` with a request body (every agent; older ones only): it answers
 *   `{ bytes }` once all are written. A forward then holds two requests.
 *
 * Both are flow-controlled streams of @vmlink/rpc, so a reader that stalls one forwarded
 * connection stalls only that one. The id is valid on the connection that opened it
 * only; net.send refuses the id of a connection that takes its bytes from net.connect.
 */
export interface ConnectResult {
  id: string;
}
export interface SendParams {
  id: string;
}
export interface SendResult {
  bytes: number;
}

/** Params and result of each method, for typed clients. */
export interface MethodTypes extends DetachedMethodTypes, UploadResumeMethodTypes {
  ping: { params: Record<string, never>; result: PingResult };
  info: { params: Record<string, never>; result: AgentInfo };
  'fs.stat': { params: PathParams; result: StatResult };
  'fs.list': { params: PathParams; result: ListResult };
  'fs.read': { params: ReadParams; result: ReadResult };
  'fs.write': { params: WriteParams; result: TransferResult };
  'fs.hash': { params: HashParams; result: HashResult };
  'fs.mkdir': { params: MkdirParams; result: MkdirResult };
  'fs.rm': { params: RmParams; result: RmResult };
  'fs.mv': { params: MvParams; result: MvResult };
  'fs.chmod': { params: ChmodParams; result: ChmodResult };
  'fs.utimes': { params: UtimesParams; result: UtimesResult };
  exec: { params: ExecParams; result: ExecStarted };
  'exec.stdin': { params: ExecStdinParams; result: { bytes: number } };
  'exec.signal': { params: ExecSignalParams; result: { signal: string; delivered: boolean } };
  'net.probe': { params: NetTarget; result: ProbeResult };
  'net.connect': { params: NetTarget; result: ConnectResult };
  'net.send': { params: SendParams; result: SendResult };
}
