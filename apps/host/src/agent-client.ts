/**
 * What the CLI needs from an agent, independent of how calls travel. The implementation
 * over @vmlink/rpc is in rpc-client.ts; commands only see this interface.
 */
export type FileType = 'file' | 'directory' | 'symlink' | 'other';

export interface StatResult {
  path: string;
  type: FileType;
  size: number;
  mode: number;
  mtimeMs: number;
}

export interface ListResult {
  path: string;
  entries: { name: string; type: FileType; size: number; mtimeMs: number }[];
  truncated: boolean;
}

export interface TransferResult {
  size: number;
  sha256: string;
}

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
}

/** Plain JSON from the agent's `info` (the agent defines it); printed as is with --json. */
export type { AgentInfo } from 'vmlink-guest';
import type { AgentInfo } from 'vmlink-guest';

export interface AgentClient {
  readonly uri: string;
  ping(): Promise<{ time: number }>;
  info(): Promise<AgentInfo>;
  stat(path: string): Promise<StatResult>;
  list(path: string): Promise<ListResult>;
  /** Streams a remote file into `sink` (which applies backpressure by resolving late). */
  read(path: string, sink: (chunk: Uint8Array) => Promise<void>, onSize?: (size: number) => void): Promise<TransferResult>;
  /** Streams `source` (of `size` bytes hashing to `sha256`) into a remote file. */
  write(path: string, source: AsyncIterable<Uint8Array>, size: number, sha256: string): Promise<TransferResult>;
  exec(command: string, args: readonly string[], onOutput: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Promise<void>): Promise<ExecResult>;
  close(): Promise<void>;
}
