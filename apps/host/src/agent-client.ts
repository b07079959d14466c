/**
 * What the CLI needs from an agent, independent of how calls travel. The implementation
 * over @vmlink/rpc is in rpc-client.ts; commands only see this interface.
 */
// The wire shapes of stat, list, transfers, exec and info are the agent's (vmlink-guest defines them).
export type { AgentInfo, ExecResult, FileType, ListResult, StatResult, TransferResult } from 'vmlink-guest';
import type { AgentInfo, ExecResult, ListResult, StatResult, TransferResult } from 'vmlink-guest';

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
