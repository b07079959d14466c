/**
 * The agent's vocabulary on top of @vmlink/rpc: method names and the layout of the two
 * streamed response bodies. apps/host/src/protocol.ts mirrors the body layouts (the apps
 * do not depend on each other); the end-to-end tests keep the two in agreement.
 */
export const METHODS = ['ping', 'info', 'fs.stat', 'fs.list', 'fs.read', 'fs.write', 'exec'] as const;
export type MethodName = (typeof METHODS)[number];

/**
 * fs.read: the result `{ size }` comes first (RPC results precede bodies), so the body is
 * the `size` bytes of the file followed by a 32-byte SHA-256 trailer of those bytes.
 */
export const READ_TRAILER_BYTES = 32;

/**
 * exec: one body of records, each 1 byte tag, u32 BE length, bytes. Tags: 1 stdout,
 * 2 stderr, 3 the exit status as JSON `{ exitCode, signal }` (always the last record).
 * One body keeps flow control simple and stdout/stderr interleaving in order.
 */
export const EXEC_STDOUT = 1;
export const EXEC_STDERR = 2;
export const EXEC_EXIT = 3;
export const EXEC_RECORD_HEADER = 5;

export function encodeExecRecord(tag: number, data: Uint8Array): Buffer {
  const header = Buffer.allocUnsafe(EXEC_RECORD_HEADER);
  header.writeUInt8(tag, 0);
  header.writeUInt32BE(data.length, 1);
  return Buffer.concat([header, data]);
}
