import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { throwIfAborted } from '@vmlink/errors';
import type { BackendFile, FileBackend } from '../aio.js';
import { AgentErrorCode, agentError } from '../errors.js';
import { OPEN_CREATE_EXCLUSIVE, OPEN_READ_NOFOLLOW, type RootJail } from '../policy/confine.js';

/** Reads and writes move this much per AIO request: big enough to amortise a round trip. */
export const CHUNK_BYTES = 1024 * 1024;

export type FileType = 'file' | 'directory' | 'symlink' | 'other';

export interface StatResult {
  path: string;
  type: FileType;
  size: number;
  mode: number;
  mtimeMs: number;
}

export interface ListEntry {
  name: string;
  type: FileType;
  size: number;
  mtimeMs: number;
}

export interface ListResult {
  path: string;
  entries: ListEntry[];
  /** True when the directory held more than the agent's maxListEntries. */
  truncated: boolean;
}

export interface TransferResult {
  size: number;
  sha256: string;
}

function typeOf(stats: Stats): FileType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  return 'other';
}

export async function statPath(jail: RootJail, remotePath: unknown): Promise<StatResult> {
  const real = await jail.resolveExisting(remotePath);
  const stats = await fsp.stat(real);
  return { path: jail.toRemote(real), type: typeOf(stats), size: stats.size, mode: stats.mode & 0o7777, mtimeMs: Math.round(stats.mtimeMs) };
}

export async function listDirectory(jail: RootJail, remotePath: unknown, maxEntries: number): Promise<ListResult> {
  const real = await jail.resolveExisting(remotePath);
  const dir = await fsp.opendir(real);
  const entries: ListEntry[] = [];
  let truncated = false;
  try {
    for await (const dirent of dir) {
      if (entries.length >= maxEntries) {
        truncated = true;
        break;
      }
      // lstat: entries are described, never followed (a symlink shows as a symlink).
      const stats = await fsp.lstat(path.join(real, dirent.name)).catch(() => undefined);
      entries.push({
        name: dirent.name,
        type: stats ? typeOf(stats) : 'other',
        size: stats?.size ?? 0,
        mtimeMs: stats ? Math.round(stats.mtimeMs) : 0,
      });
    }
  } finally {
    await dir.close().catch(() => undefined);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { path: jail.toRemote(real), entries, truncated };
}

/** Where read chunks go; resolving means "ready for more" (backpressure). */
export type ChunkSink = (chunk: Uint8Array) => Promise<void>;

/** A file opened for fs.read: confined, a regular file, its size fixed at open. */
export interface OpenedFile {
  readonly file: BackendFile;
  readonly size: number;
  readonly remotePath: string;
}

/** Opens a file for reading through the AIO backend, with every confinement check. */
export async function openForRead(backend: FileBackend, jail: RootJail, remotePath: unknown): Promise<OpenedFile> {
  const real = await jail.resolveExisting(remotePath);
  const file = await backend.open(real, OPEN_READ_NOFOLLOW);
  try {
    await jail.assertFdInside(file.fd, remotePath);
    const stats = await fsp.stat(real);
    if (!stats.isFile()) throw Object.assign(new Error(`fs.read: '${String(remotePath)}' is not a regular file`), { code: 'EISDIR' });
    return { file, size: stats.size, remotePath: String(remotePath) };
  } catch (error) {
    await file.close().catch(() => undefined);
    throw error;
  }
}

/**
 * Streams exactly `opened.size` bytes (the size announced to the client) and closes the
 * file. The next chunk is read while the previous one is being sent, so the disk and
 * the transport overlap. A file that shrank meanwhile fails with ERR_VMLINK_FILE_CHANGED.
 */
export async function streamOpenedFile(opened: OpenedFile, sink: ChunkSink, signal: AbortSignal): Promise<TransferResult> {
  const { file, size } = opened;
  const hash = createHash('sha256');
  let position = 0;
  let pending: Promise<Uint8Array> | undefined;
  try {
    pending = size > 0 ? readChunk(file, 0, Math.min(CHUNK_BYTES, size), signal) : undefined;
    while (pending) {
      const chunk = await pending;
      if (chunk.length === 0) {
        throw agentError(AgentErrorCode.FILE_CHANGED, `fs.read: '${opened.remotePath}' shrank while being read (${position} of ${size} bytes)`);
      }
      position += chunk.length;
      pending = position < size ? readChunk(file, position, Math.min(CHUNK_BYTES, size - position), signal) : undefined;
      hash.update(chunk);
      await sink(chunk);
    }
    return { size, sha256: hash.digest('hex') };
  } catch (error) {
    // The read-ahead may be left behind (client gone): it must not become an unhandled rejection.
    pending?.catch(() => undefined);
    throw error;
  } finally {
    await file.close();
  }
}

/** Opens and streams in one go (tests and simple callers). */
export async function readFileStreamed(
  backend: FileBackend,
  jail: RootJail,
  remotePath: unknown,
  sink: ChunkSink,
  signal: AbortSignal,
): Promise<TransferResult> {
  return streamOpenedFile(await openForRead(backend, jail, remotePath), sink, signal);
}

async function readChunk(file: BackendFile, position: number, length: number, signal: AbortSignal): Promise<Uint8Array> {
  const buffer = Buffer.allocUnsafe(length);
  const n = await file.read(buffer, position, { signal });
  return buffer.subarray(0, n);
}

export interface WriteOptions {
  /** Refuse (and discard) if the bytes do not hash to this, lower-case hex. */
  readonly expectedSha256?: string | undefined;
  /** Refuse (and discard) if more than this arrives. */
  readonly maxBytes: number;
  /** Refuse (and discard) unless exactly this many bytes arrive. */
  readonly expectedSize?: number | undefined;
  /** File mode for a new file (default 0o644). */
  readonly mode?: number;
  readonly signal: AbortSignal;
}

/**
 * Writes a stream to `remotePath` atomically: into a temporary file in the same
 * directory (O_EXCL|O_NOFOLLOW), through the AIO backend, fsync'd, checksum checked,
 * then renamed over the target and the directory fsync'd. Any failure unlinks the
 * temporary file: a half-written file never appears under the target name.
 */
export async function writeFileAtomic(
  backend: FileBackend,
  jail: RootJail,
  remotePath: unknown,
  source: AsyncIterable<Uint8Array>,
  options: WriteOptions,
): Promise<TransferResult> {
  const { dir, name, target } = await jail.resolveForCreate(remotePath);
  const existing = await fsp.lstat(target).catch(() => undefined);
  if (existing?.isDirectory()) throw Object.assign(new Error(`fs.write: '${String(remotePath)}' is a directory`), { code: 'EISDIR' });
  const tempPath = path.join(dir, tempNameFor(name));
  const file = await backend.open(tempPath, OPEN_CREATE_EXCLUSIVE, options.mode ?? 0o644);
  let renamed = false;
  try {
    await jail.assertFdInside(file.fd, remotePath);
    const hash = createHash('sha256');
    let position = 0;
    for await (const chunk of source) {
      throwIfAborted(options.signal);
      if (position + chunk.length > options.maxBytes) {
        throw agentError(AgentErrorCode.TOO_LARGE, `fs.write: '${String(remotePath)}' exceeds the agent's limit of ${options.maxBytes} bytes`);
      }
      hash.update(chunk);
      await writeFully(file, chunk, position, options.signal);
      position += chunk.length;
    }
    throwIfAborted(options.signal);
    const sha256 = hash.digest('hex');
    if (options.expectedSize !== undefined && options.expectedSize !== position) {
      throw agentError(
        AgentErrorCode.SIZE_MISMATCH,
        `fs.write: '${String(remotePath)}' received ${position} bytes, the client announced ${options.expectedSize}; discarded`,
      );
    }
    if (options.expectedSha256 !== undefined && options.expectedSha256 !== sha256) {
      throw agentError(
        AgentErrorCode.CHECKSUM_MISMATCH,
        `fs.write: '${String(remotePath)}' received SHA-256 ${sha256}, the client announced ${options.expectedSha256}; discarded`,
      );
    }
    await file.fsync({ signal: options.signal });
    await file.close();
    await fsp.rename(tempPath, target);
    renamed = true;
    await fsyncDirectory(dir);
    return { size: position, sha256 };
  } finally {
    if (!renamed) {
      await file.close().catch(() => undefined);
      await fsp.unlink(tempPath).catch(() => undefined);
    }
  }
}

async function writeFully(file: BackendFile, chunk: Uint8Array, position: number, signal: AbortSignal): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const n = await file.write(chunk.subarray(offset), position + offset, { signal });
    if (n <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    offset += n;
  }
}

/** `.NAME.vmlink-PID-RANDOM.tmp`: the pid tells a later agent whether the writer is gone. */
export function tempNameFor(name: string, pid = process.pid): string {
  return `.${name}.vmlink-${pid}-${randomBytes(6).toString('hex')}.tmp`;
}

const TEMP_NAME = /^\..+\.vmlink-(\d+)-[0-9a-f]{12}\.tmp$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temp files left by agents that died mid-write (SIGKILL, power loss), so a
 * killed transfer leaves nothing behind once an agent runs again. Walks at most
 * `maxEntries` entries, never follows symlinks; returns the removed paths.
 */
export async function sweepStaleTempFiles(root: string, maxEntries = 100_000): Promise<string[]> {
  const removed: string[] = [];
  const pending = [root];
  let seen = 0;
  while (pending.length > 0 && seen < maxEntries) {
    const dir = pending.pop() as string;
    const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      seen += 1;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        pending.push(full);
        continue;
      }
      const match = TEMP_NAME.exec(entry.name);
      if (entry.isFile() && match && Number(match[1]) !== process.pid && !processAlive(Number(match[1]))) {
        await fsp.unlink(full).then(() => removed.push(full), () => undefined);
      }
    }
  }
  return removed;
}

/** Makes the rename itself durable. */
async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
