/**
 * The body layouts of the agent's streamed replies (mirrors apps/guest/src/protocol.ts;
 * the apps do not depend on each other, the end-to-end tests keep them in agreement).
 */

/** fs.read: the body is the file's `size` bytes followed by their 32-byte SHA-256. */
export const READ_TRAILER_BYTES = 32;

/** exec records: u8 tag, u32 BE length, bytes. 1 stdout, 2 stderr, 3 exit status JSON (last). */
export const EXEC_STDOUT = 1;
export const EXEC_STDERR = 2;
export const EXEC_EXIT = 3;
export const EXEC_RECORD_HEADER = 5;
/** Bound on one record, so a confused peer cannot make us buffer without limit. */
export const EXEC_MAX_RECORD = 16 * 1024 * 1024;
