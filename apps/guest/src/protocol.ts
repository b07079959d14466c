/**
 * The agent's wire vocabulary on top of @vmlink/rpc: method names, params and results.
 * Shared in spirit with apps/host/src/protocol.ts (the CLI keeps its own copy so that
 * neither app depends on the other; a test checks that the two agree).
 */
export const METHODS = ['ping', 'info', 'fs.stat', 'fs.list', 'fs.read', 'fs.write', 'exec'] as const;
export type MethodName = (typeof METHODS)[number];

export interface PingResult {
  pong: true;
  /** Agent clock, ms since epoch. */
  time: number;
}

export interface FsReadParams {
  path: string;
}
export interface FsWriteParams {
  path: string;
  /** Bytes the client will send (checked against the limit before anything is written). */
  size: number;
  /** SHA-256 of the whole content, hex; the agent refuses to rename if it differs. */
  sha256?: string;
  mode?: number;
}
export interface ExecParams {
  command: string;
  args?: string[];
}

/**
 * exec output travels in one response body as records: 1 byte stream tag (1 stdout,
 * 2 stderr), 4 bytes big-endian length, then the bytes. One body keeps flow control
 * simple and the order of stdout/stderr interleaving intact.
 */
export const EXEC_STDOUT = 1;
export const EXEC_STDERR = 2;
export const EXEC_RECORD_HEADER = 5;

export function encodeExecRecord(tag: number, data: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(EXEC_RECORD_HEADER);
  header.writeUInt8(tag, 0);
  header.writeUInt32BE(data.length, 1);
  return Buffer.concat([header, data]);
}
