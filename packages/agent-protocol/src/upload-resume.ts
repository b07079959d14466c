/**
 * Resumable uploads (`vmlink cp --resume` up): `fs.write` with `resume: true` keeps what
 * arrived in a part file next to the target when the transfer breaks; `fs.partial` tells
 * the client how much is there and its SHA-256 (hashed by the agent); the client compares
 * it with its own prefix and continues with `fs.write { offset, prefixSha256 }`, which
 * the agent checks against the part again before it appends (a mismatch discards the
 * part: `ERR_VMLINK_CHECKSUM_MISMATCH`, the client starts over from 0).
 */
export const UPLOAD_RESUME_METHODS = ['fs.partial'] as const;

/** fs.partial `{ path, sha256 }`: the part kept for an upload of the file hashing to `sha256` into `path`. */
export interface PartialParams {
  path: string;
  /** The whole file's SHA-256: a part belongs to one file content, never another's. */
  sha256: string;
}
export interface PartialResult {
  /** Bytes held (0: none). */
  length: number;
  /** SHA-256 of those bytes. */
  sha256: string;
}

/** What fs.write takes besides WriteParams' own for a resumable upload. */
export interface WriteResumeParams {
  /** Keep what arrived if the transfer breaks (needs `sha256`). */
  resume?: boolean;
  /** Continue the kept part from here (its first `offset` bytes must hash to `prefixSha256`). */
  offset?: number;
  prefixSha256?: string;
}

export interface UploadResumeMethodTypes {
  'fs.partial': { params: PartialParams; result: PartialResult };
}

/** The part file's name next to the target NAME (no pid: it outlives the agent, by design). */
export function uploadPartName(name: string, sha256: string): string {
  return `.${name}.vmlink-upload-${sha256.slice(0, 16)}.part`;
}
