import { createHash } from 'node:crypto';
import { constants as fsConstants, fstat as fstatCallback, futimes as futimesCallback, promises as fsp, read as readCallback, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import { uploadPartName, type FileType, type ListEntry, type ListResult, type PartialResult, type StatResult, type TransferResult } from '@vmlink/agent-protocol';
import { throwIfAborted } from '@vmlink/errors';
import type { BackendFile, FileBackend } from '../aio.js';
import { AgentErrorCode, agentError } from '../errors.js';
import { at, O_PATH, reopenPath } from '../fs/beneath.js';
import { forClient, systemError } from '../fs/client-errors.js';
import { tempNameFor } from '../fs/stale-temp.js';
import { OPEN_CREATE_EXCLUSIVE, type RootJail } from '../policy/confine.js';

export { sweepStaleTempFiles, tempNameFor } from '../fs/stale-temp.js';

const fstat = promisify(fstatCallback);
const readAt = promisify(readCallback);
const futimes = promisify(futimesCallback);

/** Reads and writes move this much per AIO request: big enough to amortise a round trip. */
export const CHUNK_BYTES = 1024 * 1024;

export type { FileType, ListEntry, ListResult, StatResult, TransferResult } from '@vmlink/agent-protocol';

function typeOf(stats: Stats): FileType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  return 'other';
}

export async function statPath(jail: RootJail, remotePath: unknown): Promise<StatResult> {
  const walked = await jail.walk(remotePath, 'entry');
  const clientPath = remotePath as string;
  try {
    // The walk lstat'ed the final name (a symlink there was followed); the root has no name.
    const stats = walked.stats ?? (await walked.dir.stat());
    refuseHardLinked(jail, stats, clientPath, 'fs.stat');
    return {
      path: walked.resolved,
      type: typeOf(stats),
      size: stats.size,
      mode: stats.mode & 0o7777,
      mtimeMs: Math.round(stats.mtimeMs),
      nlink: stats.nlink,
      uid: stats.uid,
      gid: stats.gid,
    };
  } catch (error) {
    throw forClient(error, clientPath);
  } finally {
    await walked.release();
  }
}

export async function listDirectory(jail: RootJail, remotePath: unknown, maxEntries: number): Promise<ListResult> {
  const walked = await jail.walk(remotePath, 'directory');
  const clientPath = remotePath as string;
  const entries: ListEntry[] = [];
  let truncated = false;
  try {
    // opendir of the magic link reads the very directory the walk opened, whatever its name is now.
    const dir = await fsp.opendir(reopenPath(walked.dir.fd));
    try {
      for await (const dirent of dir) {
        if (entries.length >= maxEntries) {
          truncated = true;
          break;
        }
        // lstat: entries are described, never followed (a symlink shows as a symlink).
        const stats = await fsp.lstat(at(walked.dir.fd, dirent.name)).catch(() => undefined);
        entries.push({
          name: dirent.name,
          type: stats ? typeOf(stats) : 'other',
          size: stats?.size ?? 0,
          mtimeMs: stats ? Math.round(stats.mtimeMs) : 0,
          mode: stats ? stats.mode & 0o7777 : 0,
        });
      }
    } finally {
      await dir.close().catch(() => undefined);
    }
  } catch (error) {
    throw forClient(error, clientPath);
  } finally {
    await walked.release();
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { path: walked.resolved, entries, truncated };
}

/** Where read chunks go; resolving means "ready for more" (backpressure). */
export type ChunkSink = (chunk: Uint8Array) => Promise<void>;

/** A file opened for fs.read: confined, a regular file, its size fixed at open. */
export interface OpenedFile {
  readonly file: BackendFile;
  readonly size: number;
  readonly remotePath: string;
}

/**
 * Opens a file for reading through the AIO backend, with every confinement check.
 *
 * The final name is first opened with O_PATH|O_NOFOLLOW, which opens nothing for real: no
 * FIFO open that waits for a writer, no device driver's open. Only when fstat says it is
 * a regular file (with one link, unless allowed) is it reopened for reading through
 * `/proc/self/fd/N`, which is the same inode, not a name that could have been swapped.
 */
export async function openForRead(backend: FileBackend, jail: RootJail, remotePath: unknown): Promise<OpenedFile> {
  const walked = await jail.walk(remotePath, 'entry');
  const clientPath = remotePath as string;
  let file: BackendFile | undefined;
  try {
    if (walked.name === undefined) throw systemError('EISDIR', 'open', clientPath, `fs.read: '${clientPath}' is a directory`);
    const probe = await fsp.open(at(walked.dir.fd, walked.name), O_PATH | fsConstants.O_NOFOLLOW);
    let stats: Stats;
    try {
      stats = await probe.stat();
      refuseUnreadable(jail, stats, clientPath);
      // No O_NONBLOCK needed here: this inode is a regular file (and O_NONBLOCK would turn
      // into IOCB_NOWAIT for some AIO backends).
      file = await backend.open(reopenPath(probe.fd), fsConstants.O_RDONLY);
    } finally {
      await probe.close();
    }
    const opened = await fstat(file.fd);
    if (opened.dev !== stats.dev || opened.ino !== stats.ino || !opened.isFile()) {
      throw agentError(AgentErrorCode.FILE_CHANGED, `fs.read: '${clientPath}' changed while being opened`);
    }
    await refuseSizeLie(file.fd, opened, clientPath);
    return { file, size: opened.size, remotePath: clientPath };
  } catch (error) {
    await file?.close().catch(() => undefined);
    throw forClient(error, clientPath);
  } finally {
    await walked.release();
  }
}

/** What fs.read serves: a regular file, and with one link unless hard links are allowed. */
function refuseUnreadable(jail: RootJail, stats: Stats, clientPath: string): void {
  if (stats.isDirectory()) throw systemError('EISDIR', 'open', clientPath, `fs.read: '${clientPath}' is a directory`);
  if (stats.isSymbolicLink()) throw agentError(AgentErrorCode.FILE_CHANGED, `fs.read: '${clientPath}' changed into a symlink while being opened`);
  if (!stats.isFile()) {
    throw agentError(AgentErrorCode.NOT_REGULAR_FILE, `fs.read: '${clientPath}' is a ${kindOf(stats)}, not a regular file: refused`);
  }
  refuseHardLinked(jail, stats, clientPath, 'fs.read');
}

/** Refuses a regular file with more than one link (it may be a hard link to a file outside the root). */
function refuseHardLinked(jail: RootJail, stats: Stats, clientPath: string, method: string): void {
  if (stats.isFile() && stats.nlink > 1 && !jail.allowHardlinks) {
    throw agentError(
      AgentErrorCode.PATH_ESCAPE,
      `${method}: '${clientPath}' has ${stats.nlink} hard links; one may be outside the agent root, so it is refused (--allow-hardlinks serves it)`,
    );
  }
}

/**
 * fs.read announces fstat's size, then sends exactly that many bytes with their SHA-256.
 * Pseudo files (/proc, /sys) report size 0 yet have content: sending 0 bytes "verified"
 * would be a lie, so a 0-byte file that yields a byte is refused. (A file that reports
 * more than it has fails mid-stream with ERR_VMLINK_FILE_CHANGED.)
 */
async function refuseSizeLie(fd: number, stats: Stats, clientPath: string): Promise<void> {
  if (stats.size !== 0) return;
  const { bytesRead } = await readAt(fd, Buffer.alloc(1), 0, 1, 0);
  if (bytesRead > 0) {
    throw agentError(AgentErrorCode.NOT_REGULAR_FILE, `fs.read: '${clientPath}' reports 0 bytes but has content (a pseudo file such as /proc or /sys): refused`);
  }
}

function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  if (stats.isSocket()) return 'socket';
  return 'special file';
}

/**
 * Streams exactly `opened.size` bytes (the size announced to the client) and closes the
 * file. The next chunk is read while the previous one is being sent, so the disk and
 * the transport overlap. A file that shrank meanwhile fails with ERR_VMLINK_FILE_CHANGED.
 */
export async function streamOpenedFile(opened: OpenedFile, sink: ChunkSink, signal: AbortSignal, offset = 0): Promise<TransferResult> {
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
      const start = position;
      position += chunk.length;
      pending = position < size ? readChunk(file, position, Math.min(CHUNK_BYTES, size - position), signal) : undefined;
      hash.update(chunk);
      // A resumed read hashes the prefix (the trailer covers the whole file) but sends only from `offset`.
      if (position > offset) await sink(start >= offset ? chunk : chunk.subarray(offset - start));
    }
    return { size, sha256: hash.digest('hex') };
  } catch (error) {
    // The read-ahead may be left behind (client gone): it must not become an unhandled rejection.
    pending?.catch(() => undefined);
    throw forClient(error, opened.remotePath);
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
  /** Modification time to set before the rename (cp keeps mtimes). */
  readonly mtimeMs?: number | undefined;
  /**
   * A resumable upload (needs `expectedSha256`): the bytes go to the part file
   * `uploadPartName(name, sha256)`, kept when the transfer breaks; from `offset` > 0 the
   * kept part is continued once its first `offset` bytes hash to `prefixSha256`.
   */
  readonly resume?: { readonly offset: number; readonly prefixSha256?: string | undefined } | undefined;
  readonly signal: AbortSignal;
}

const OPEN_PART_READ = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
const OPEN_PART_CONTINUE = fsConstants.O_RDWR | fsConstants.O_NOFOLLOW;
const OPEN_PART_RESTART = fsConstants.O_RDWR | fsConstants.O_NOFOLLOW | fsConstants.O_CREAT | fsConstants.O_TRUNC;

/** A part file must be a plain regular file with one name: never a FIFO, a device or a hard link to something else. */
function checkPart(stats: Stats, clientPath: string): void {
  if (!stats.isFile() || stats.nlink !== 1) {
    throw agentError(AgentErrorCode.NOT_REGULAR_FILE, `fs.write: the kept part of an upload to '${clientPath}' is not a regular file with one link; refused`);
  }
}

/** SHA-256 of the first `length` bytes of an open file (the kept part of an upload). */
async function hashOpenPrefix(fd: number, length: number, signal: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await readPrefixInto(fd, length, hash, signal);
  return hash.digest('hex');
}

function checkSha256Param(value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `${what} must be 64 lower-case hex digits, got ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  return value;
}

/**
 * fs.partial: how much of an upload of the file hashing to `sha256` into `remotePath` the
 * agent kept (a `cp --resume` that broke), and the SHA-256 of it, hashed here.
 */
export async function partialUpload(jail: RootJail, remotePath: unknown, rawSha256: unknown, signal: AbortSignal): Promise<PartialResult> {
  const sha256 = checkSha256Param(rawSha256, 'fs.partial: sha256');
  const walked = await jail.walk(remotePath, 'create');
  const clientPath = remotePath as string;
  try {
    const handle = await fsp.open(at(walked.dir.fd, uploadPartName(walked.name as string, sha256)), OPEN_PART_READ).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!handle) return { length: 0, sha256: createHash('sha256').digest('hex') };
    try {
      const stats = await handle.stat();
      checkPart(stats, clientPath);
      return { length: stats.size, sha256: await hashOpenPrefix(handle.fd, stats.size, signal) };
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw forClient(error, clientPath);
  } finally {
    await walked.release();
  }
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
  const walked = await jail.walk(remotePath, 'create');
  const clientPath = remotePath as string;
  const dirFd = walked.dir.fd;
  const name = walked.name as string; // 'create' always ends in a name
  const resume = options.resume;
  if (resume && options.expectedSha256 === undefined) {
    await walked.release();
    throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.write: a resumable upload to '${clientPath}' needs the file's sha256`);
  }
  const tempName = resume ? uploadPartName(name, options.expectedSha256 as string) : tempNameFor(name);
  let file: BackendFile | undefined;
  let renamed = false;
  // A resumable upload keeps its part when the transfer breaks, not when what arrived is wrong.
  let keepPart = resume !== undefined;
  try {
    const existing = await fsp.lstat(at(dirFd, name)).catch(() => undefined);
    if (existing?.isDirectory()) throw systemError('EISDIR', 'open', clientPath, `fs.write: '${clientPath}' is a directory`);
    const hash = createHash('sha256');
    let position = 0;
    if (!resume) {
      file = await backend.open(at(dirFd, tempName), OPEN_CREATE_EXCLUSIVE, options.mode ?? 0o644);
    } else {
      file = await backend.open(at(dirFd, tempName), resume.offset > 0 ? OPEN_PART_CONTINUE : OPEN_PART_RESTART, options.mode ?? 0o644);
      const stats = await fstat(file.fd);
      checkPart(stats, clientPath);
      if (resume.offset > 0) {
        // The agent's own check of the prefix it continues: the client compared fs.partial's
        // hash, but the part may have changed since (another client, a disk error).
        const held = stats.size >= resume.offset ? await readPrefixInto(file.fd, resume.offset, hash, options.signal) : 0;
        if (held !== resume.offset || hash.copy().digest('hex') !== resume.prefixSha256) {
          keepPart = false;
          throw agentError(
            AgentErrorCode.CHECKSUM_MISMATCH,
            `fs.write: the kept part of '${clientPath}' (${stats.size} bytes) does not start with the ${resume.offset} bytes the client has; discarded, copy again from 0`,
          );
        }
        // The prefix is in the whole file's hash now; anything past it is dropped.
        await fsp.truncate(reopenPath(file.fd), resume.offset);
        position = resume.offset;
      }
    }
    for await (const chunk of source) {
      throwIfAborted(options.signal);
      if (position + chunk.length > options.maxBytes) {
        throw agentError(AgentErrorCode.TOO_LARGE, `fs.write: '${clientPath}' exceeds the agent's limit of ${options.maxBytes} bytes`);
      }
      hash.update(chunk);
      await writeFully(file, chunk, position, options.signal);
      position += chunk.length;
    }
    throwIfAborted(options.signal);
    const sha256 = hash.digest('hex');
    if (options.expectedSize !== undefined && options.expectedSize !== position) {
      keepPart = false;
      throw agentError(
        AgentErrorCode.SIZE_MISMATCH,
        `fs.write: '${clientPath}' received ${position} bytes, the client announced ${options.expectedSize}; discarded`,
      );
    }
    if (options.expectedSha256 !== undefined && options.expectedSha256 !== sha256) {
      keepPart = false;
      throw agentError(
        AgentErrorCode.CHECKSUM_MISMATCH,
        `fs.write: '${clientPath}' received SHA-256 ${sha256}, the client announced ${options.expectedSha256}; discarded`,
      );
    }
    // On the fd, after the last write (a write would move mtime again), never by name.
    if (options.mtimeMs !== undefined) await futimes(file.fd, options.mtimeMs / 1000, options.mtimeMs / 1000);
    await file.fsync({ signal: options.signal });
    await file.close();
    // Both names in the one directory the walk opened: the rename cannot land anywhere else.
    // It replaces the directory entry, never writes into the old inode (a hard-linked or
    // symlinked target is unlinked from here, its other names untouched).
    await fsp.rename(at(dirFd, tempName), at(dirFd, name));
    renamed = true;
    // Makes the rename itself durable.
    await walked.dir.sync();
    return { size: position, sha256 };
  } catch (error) {
    throw forClient(error, clientPath);
  } finally {
    if (!renamed) {
      if (keepPart) await file?.fsync({ signal: new AbortController().signal }).catch(() => undefined);
      await file?.close().catch(() => undefined);
      if (file && !keepPart) await fsp.unlink(at(dirFd, tempName)).catch(() => undefined);
    }
    await walked.release();
  }
}

/** Feeds the first `length` bytes of `fd` into `hash`; returns how many there were. */
async function readPrefixInto(fd: number, length: number, hash: ReturnType<typeof createHash>, signal: AbortSignal): Promise<number> {
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(1, length)));
  let position = 0;
  while (position < length) {
    throwIfAborted(signal);
    const { bytesRead } = await readAt(fd, buffer, 0, Math.min(buffer.length, length - position), position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return position;
}

async function writeFully(file: BackendFile, chunk: Uint8Array, position: number, signal: AbortSignal): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const n = await file.write(chunk.subarray(offset), position + offset, { signal });
    if (n <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    offset += n;
  }
}
