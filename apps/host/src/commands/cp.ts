import { createHash, type Hash } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { VmlinkError } from '@vmlink/errors';
import type { AgentClient, TransferResult } from '../agent-client.js';
import type { Command } from '../args.js';
import { type CliOutput, printJson } from '../output.js';
import { ProgressBar, formatBytes } from '../progress.js';
import type { CopyPlan } from '../remote-spec.js';
import { partNameFor, partOwner, processGone, sweepStaleParts } from '../stale-parts.js';

export interface CopyOutcome extends TransferResult {
  direction: CopyPlan['direction'];
  from: string;
  to: string;
  verified: true;
  /** cp --resume: bytes that were already here and checked, not transferred again. */
  resumedFrom?: number;
}

export interface TreeOutcome {
  direction: CopyPlan['direction'];
  from: string;
  to: string;
  files: number;
  directories: number;
  bytes: number;
  /** Symlinks and special files are not copied. */
  skipped: string[];
  verified: true;
}

type ProgressTarget = ConstructorParameters<typeof ProgressBar>[2];

function integrityError(what: string, expected: string, actual: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_CHECKSUM_MISMATCH', `${what}: SHA-256 ${actual} does not match the sender's ${expected}; the copy was discarded`);
}

function localError(cause: NodeJS.ErrnoException, localPath: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_LOCAL_FILE', `local file '${localPath}': ${cause.code ?? ''} ${cause.message}`.trim(), { cause });
}

/** Where an interrupted `cp --resume` download keeps what it has (not swept: it carries no pid). */
export function resumeNameFor(name: string): string {
  return `.${name}.vmlink-resume.part`;
}

export async function cpCommand(client: AgentClient, command: Extract<Command, { name: 'cp' }>, out: CliOutput): Promise<number> {
  const { plan, progress, common } = command;
  const progressOut: ProgressTarget = progress === undefined ? out.stderr : { isTTY: progress, columns: out.stderr.columns ?? 80, write: (t: string) => out.stderr.write(t) };
  if (command.recursive) {
    const tree = plan.direction === 'download' ? await downloadTree(client, plan, progressOut) : await uploadTree(client, plan, progressOut);
    if (common.json) printJson(out, tree);
    else {
      const skipped = tree.skipped.length > 0 ? `; skipped ${tree.skipped.length} symlink(s)/special file(s): ${tree.skipped.slice(0, 5).join(', ')}${tree.skipped.length > 5 ? ', ...' : ''}` : '';
      out.stdout.write(`${tree.from} -> ${tree.to}: ${tree.files} files, ${tree.directories} directories, ${formatBytes(tree.bytes)} (${tree.bytes} bytes), each SHA-256 verified${skipped}\n`);
    }
    return 0;
  }
  const outcome = plan.direction === 'download' ? await downloadFile(client, plan.remotePath, plan.localPath, progressOut, { resume: command.resume }) : await uploadFile(client, plan.localPath, plan.remotePath, progressOut, { resume: command.resume });
  if (common.json) printJson(out, outcome);
  else {
    const resumed = outcome.resumedFrom ? ` (resumed after ${formatBytes(outcome.resumedFrom)} already here)` : '';
    out.stdout.write(`${outcome.from} -> ${outcome.to}: ${formatBytes(outcome.size)} (${outcome.size} bytes), sha256 ${outcome.sha256} (verified)${resumed}\n`);
  }
  return 0;
}

interface DownloadOptions {
  readonly resume?: boolean;
  /** Tree copies: the target is exactly this path (no "into a directory"). */
  readonly exact?: boolean;
  /** Tree copies: permission bits and mtime to give the file before the rename. */
  readonly mode?: number;
  readonly mtimeMs?: number;
}

/** Hashes what `handle` holds (the prefix a resume keeps) into `hash`. */
async function hashPrefixInto(file: string, hash: Hash): Promise<number> {
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return size;
}

/**
 * `cp --resume`: the partial file to continue, if any. The resume name first; else the
 * largest `.part` of the same target left by a vmlink that is gone (SIGKILL, power
 * loss) is adopted. Only regular files of our own uid.
 */
async function findPartial(dir: string, name: string): Promise<string | undefined> {
  const uid = process.getuid?.();
  const mine = async (full: string): Promise<number | undefined> => {
    const stats = await lstat(full).catch(() => undefined);
    return stats?.isFile() && (uid === undefined || stats.uid === uid) ? stats.size : undefined;
  };
  const resumePath = path.join(dir, resumeNameFor(name));
  if ((await mine(resumePath)) !== undefined) return resumePath;
  let best: { full: string; size: number } | undefined;
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const pid = partOwner(entry);
    if (pid === undefined || pid === process.pid || !entry.startsWith(`.${name}.vmlink-`) || !processGone(pid)) continue;
    const size = await mine(path.join(dir, entry));
    if (size !== undefined && (best === undefined || size > best.size)) best = { full: path.join(dir, entry), size };
  }
  if (!best) return undefined;
  await rename(best.full, resumePath);
  return resumePath;
}

/** Local side: write to a temp name in the target directory, fsync, verify, rename. */
async function downloadFile(client: AgentClient, remotePath: string, localPath: string, progressOut: ProgressTarget, options: DownloadOptions): Promise<CopyOutcome> {
  let target = localPath;
  if (!options.exact) {
    const existing = await stat(target).catch(() => undefined);
    if (existing?.isDirectory()) target = path.join(target, path.posix.basename(remotePath));
  }
  const dir = path.dirname(target);
  const name = path.basename(target);
  let hash = createHash('sha256');
  let offset = 0;
  let temp: string;
  let handle: FileHandle;
  try {
    const partial = options.resume ? await findPartial(dir, name) : undefined;
    // Leftovers of earlier runs that were killed (SIGKILL leaves no chance to clean up).
    await sweepStaleParts(dir);
    if (partial) {
      temp = partial;
      const have = await hashPrefixInto(partial, hash);
      const remote = have > 0 ? await client.hash(remotePath, have) : undefined;
      if (remote && remote.length === have && remote.sha256 === hash.copy().digest('hex')) {
        offset = have;
      } else {
        // What is here is not the start of that file (it changed, or another file): start over.
        hash = createHash('sha256');
      }
      handle = await open(temp, offset > 0 ? 'r+' : 'w', 0o644);
    } else {
      temp = path.join(dir, options.resume ? resumeNameFor(name) : partNameFor(name));
      handle = await open(temp, options.resume ? 'w' : 'wx', 0o644);
    }
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_VMLINK')) throw err;
    throw localError(err as NodeJS.ErrnoException, target);
  }
  let bar: ProgressBar | undefined;
  let done = false;
  // Ctrl-C mid-download: remove the partial file before dying (a resumable one is kept).
  const onInterrupt = (): void => {
    bar?.clear();
    if (!options.resume) rmSync(temp, { force: true });
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);
  let keep = Boolean(options.resume);
  try {
    let size = offset;
    let position = offset;
    const result = await client.read(
      remotePath,
      async (chunk) => {
        hash.update(chunk);
        // A local failure (ENOSPC, EIO) is ours, not the agent's: exit 73, not 66.
        await handle.write(chunk, 0, chunk.length, position).catch((err: unknown) => {
          throw localError(err as NodeJS.ErrnoException, target);
        });
        position += chunk.length;
        size += chunk.length;
        bar?.advance(chunk.length);
      },
      (total) => {
        bar = new ProgressBar(`download ${name}`, total, progressOut);
        if (offset > 0) bar.advance(offset);
      },
      offset,
    );
    const local = hash.digest('hex');
    if (local !== result.sha256 || size !== result.size) {
      keep = false; // a resumed prefix that does not add up is worthless: start over next time
      throw integrityError(remotePath, result.sha256, local);
    }
    try {
      await handle.truncate(size);
      if (options.mode !== undefined) await handle.chmod(options.mode);
      await handle.sync();
      await handle.close();
      if (options.mtimeMs !== undefined) await utimes(temp, options.mtimeMs / 1000, options.mtimeMs / 1000);
      await rename(temp, target);
    } catch (err) {
      throw localError(err as NodeJS.ErrnoException, target);
    }
    done = true;
    bar?.finish();
    return {
      direction: 'download',
      from: `${client.uri}:${remotePath}`,
      to: target,
      size,
      sha256: local,
      verified: true,
      ...(offset > 0 ? { resumedFrom: offset } : {}),
    };
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
    if (!done) {
      bar?.clear();
      await handle.close().catch(() => undefined);
      if (!keep) await unlink(temp).catch(() => undefined);
    }
  }
}

async function hashFile(localPath: string, progressOut: ProgressTarget, size: number): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  // The upload's pre-hash reads the whole file once: on a big file that takes a while, so it shows progress too.
  const bar = new ProgressBar(`hash ${path.basename(localPath)}`, size, progressOut);
  let total = 0;
  try {
    for await (const chunk of createReadStream(localPath, { highWaterMark: 1024 * 1024 })) {
      hash.update(chunk as Buffer);
      total += (chunk as Buffer).length;
      bar.advance((chunk as Buffer).length);
    }
  } finally {
    bar.clear();
  }
  return { size: total, sha256: hash.digest('hex') };
}

interface UploadOptions {
  /** Keep what reached the agent if the copy breaks, and continue from it next time (after its SHA-256 checks). */
  readonly resume?: boolean;
  readonly exact?: boolean;
  readonly mode?: number;
  readonly mtimeMs?: number;
}

/** Remote side is atomic in the agent; we announce the SHA-256 up front so it can refuse. */
async function uploadFile(client: AgentClient, localPath: string, remoteTarget: string, progressOut: ProgressTarget, options: UploadOptions): Promise<CopyOutcome> {
  let local: { size: number; sha256: string };
  try {
    const stats = await stat(localPath);
    if (!stats.isFile()) throw Object.assign(new Error('not a regular file'), { code: stats.isDirectory() ? 'EISDIR' : 'EINVAL' });
    local = await hashFile(localPath, progressOut, stats.size);
  } catch (err) {
    throw localError(err as NodeJS.ErrnoException, localPath);
  }
  let remotePath = remoteTarget;
  if (!options.exact) {
    if (remotePath.endsWith('/')) {
      remotePath += path.basename(localPath);
    } else {
      const remote = await client.stat(remotePath).catch(() => undefined);
      if (remote?.type === 'directory') remotePath = `${remotePath}/${path.basename(localPath)}`;
    }
  }
  const start = options.resume ? await resumePoint(client, localPath, remotePath, local) : FROM_ZERO;
  try {
    return await sendFile(client, localPath, remotePath, local, progressOut, options, start);
  } catch (err) {
    // The agent checks the kept prefix again before it appends; if it changed since
    // fs.partial (and was discarded), the copy starts over from 0 once.
    if (start.offset > 0 && (err as { code?: unknown }).code === 'ERR_VMLINK_CHECKSUM_MISMATCH') return sendFile(client, localPath, remotePath, local, progressOut, options, FROM_ZERO);
    throw err;
  }
}

/**
 * cp --resume up: what the agent kept of an earlier attempt to upload this very file
 * (fs.partial, hashed by the agent), if it is the start of our file; else 0 (the agent
 * then starts its part over). An agent without fs.partial gets a plain upload.
 */
async function resumePoint(client: AgentClient, localPath: string, remotePath: string, local: { size: number; sha256: string }): Promise<ResumePoint> {
  let held;
  try {
    held = await client.partial(remotePath, local.sha256);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_VMLINK_PROTOCOL') return FROM_ZERO; // an older agent
    throw err;
  }
  if (held.length === 0 || held.length > local.size) return FROM_ZERO;
  let ours: string;
  try {
    ours = await prefixSha256(localPath, held.length);
  } catch (err) {
    throw localError(err as NodeJS.ErrnoException, localPath);
  }
  return ours === held.sha256 ? { offset: held.length, prefixSha256: ours } : FROM_ZERO;
}

interface ResumePoint {
  readonly offset: number;
  readonly prefixSha256?: string;
}
const FROM_ZERO: ResumePoint = { offset: 0 };

async function sendFile(
  client: AgentClient,
  localPath: string,
  remotePath: string,
  local: { size: number; sha256: string },
  progressOut: ProgressTarget,
  options: UploadOptions,
  start: ResumePoint,
): Promise<CopyOutcome> {
  const offset = start.offset;
  const bar = new ProgressBar(`upload ${path.basename(localPath)}`, local.size, progressOut);
  if (offset > 0) bar.advance(offset);
  async function* source(): AsyncGenerator<Uint8Array> {
    if (offset === local.size) return;
    for await (const chunk of createReadStream(localPath, { start: offset, highWaterMark: 1024 * 1024 })) {
      bar.advance((chunk as Buffer).length);
      yield chunk as Buffer;
    }
  }
  try {
    const writeOptions = {
      ...(options.mode === undefined ? {} : { mode: options.mode }),
      ...(options.mtimeMs === undefined ? {} : { mtimeMs: options.mtimeMs }),
      ...(options.resume ? { resume: true } : {}),
      ...(start.prefixSha256 === undefined ? {} : { offset, prefixSha256: start.prefixSha256 }),
    };
    const result = await client.write(remotePath, source(), local.size, local.sha256, writeOptions);
    if (result.sha256 !== local.sha256 || result.size !== local.size) throw integrityError(remotePath, local.sha256, result.sha256);
    bar.finish();
    return {
      direction: 'upload',
      from: localPath,
      to: `${client.uri}:${remotePath}`,
      size: result.size,
      sha256: result.sha256,
      verified: true,
      ...(offset > 0 ? { resumedFrom: offset } : {}),
    };
  } catch (err) {
    bar.clear();
    throw err;
  }
}

async function prefixSha256(localPath: string, length: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(localPath, { start: 0, end: length - 1, highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Like cp -r: into DST if it is an existing directory, else as DST. */
async function downloadTree(client: AgentClient, plan: CopyPlan, progressOut: ProgressTarget): Promise<TreeOutcome> {
  const top = await client.stat(plan.remotePath);
  if (top.type !== 'directory') {
    const file = await downloadFile(client, plan.remotePath, plan.localPath, progressOut, {});
    return { direction: 'download', from: file.from, to: file.to, files: 1, directories: 0, bytes: file.size, skipped: [], verified: true };
  }
  const existing = await stat(plan.localPath).catch(() => undefined);
  const base = plan.remotePath.replace(/\/+$/, '');
  const root = existing?.isDirectory() && base !== '' ? path.join(plan.localPath, path.posix.basename(base)) : plan.localPath;
  const outcome: TreeOutcome = { direction: 'download', from: `${client.uri}:${plan.remotePath}`, to: root, files: 0, directories: 0, bytes: 0, skipped: [], verified: true };
  const copyDir = async (remoteDir: string, localDir: string, mode: number, mtimeMs: number): Promise<void> => {
    // Owner-writable while we fill it; its own mode and mtime are set once it is full.
    await mkdir(localDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw localError(err, localDir);
    });
    outcome.directories += 1;
    const listing = await client.list(remoteDir);
    if (listing.truncated) {
      throw new VmlinkError('ERR_VMLINK_TOO_MANY_ENTRIES', `${remoteDir}: more entries than the agent lists at once (${listing.entries.length}); not copied completely`);
    }
    for (const entry of listing.entries) {
      // A hostile or broken agent must not steer our writes: a name is one path component.
      if (!isPlainName(entry.name)) {
        throw new VmlinkError('ERR_VMLINK_PROTOCOL', `${remoteDir}: the agent listed an entry named ${JSON.stringify(entry.name)}, which is not a file name; nothing more was copied`);
      }
      const remote = path.posix.join(remoteDir, entry.name);
      const local = path.join(localDir, entry.name);
      if (entry.type === 'directory') {
        const info = await client.stat(remote);
        await copyDir(remote, local, info.mode, info.mtimeMs);
      } else if (entry.type === 'file') {
        const info = await client.stat(remote);
        const file = await downloadFile(client, remote, local, progressOut, { exact: true, mode: info.mode & 0o777, mtimeMs: info.mtimeMs });
        outcome.files += 1;
        outcome.bytes += file.size;
      } else {
        outcome.skipped.push(remote);
      }
    }
    try {
      await chmod(localDir, mode & 0o777);
      await utimes(localDir, mtimeMs / 1000, mtimeMs / 1000);
    } catch (err) {
      throw localError(err as NodeJS.ErrnoException, localDir);
    }
  };
  await copyDir(plan.remotePath, root, top.mode, top.mtimeMs);
  return outcome;
}

/** One path component: not empty, not `.` or `..`, no `/` and no NUL. */
export function isPlainName(name: unknown): name is string {
  return typeof name === 'string' && name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

async function uploadTree(client: AgentClient, plan: CopyPlan, progressOut: ProgressTarget): Promise<TreeOutcome> {
  const top = await lstat(plan.localPath).catch((err: NodeJS.ErrnoException) => {
    throw localError(err, plan.localPath);
  });
  if (!top.isDirectory()) {
    const file = await uploadFile(client, plan.localPath, plan.remotePath, progressOut, {});
    return { direction: 'upload', from: file.from, to: file.to, files: 1, directories: 0, bytes: file.size, skipped: [], verified: true };
  }
  const remoteTop = await client.stat(plan.remotePath).catch(() => undefined);
  const root = remoteTop?.type === 'directory' ? path.posix.join(plan.remotePath, path.basename(path.resolve(plan.localPath))) : plan.remotePath;
  const outcome: TreeOutcome = { direction: 'upload', from: plan.localPath, to: `${client.uri}:${root}`, files: 0, directories: 0, bytes: 0, skipped: [], verified: true };
  const copyDir = async (localDir: string, remoteDir: string, mode: number, mtimeMs: number): Promise<void> => {
    await client.mkdir(remoteDir, { parents: true, mode: 0o700 });
    outcome.directories += 1;
    const names = await readdir(localDir).catch((err: NodeJS.ErrnoException) => {
      throw localError(err, localDir);
    });
    for (const name of names.sort()) {
      const local = path.join(localDir, name);
      const remote = path.posix.join(remoteDir, name);
      const stats = await lstat(local).catch((err: NodeJS.ErrnoException) => {
        throw localError(err, local);
      });
      if (stats.isDirectory()) await copyDir(local, remote, stats.mode, stats.mtimeMs);
      else if (stats.isFile()) {
        const file = await uploadFile(client, local, remote, progressOut, { exact: true, mode: stats.mode & 0o777, mtimeMs: Math.round(stats.mtimeMs) });
        outcome.files += 1;
        outcome.bytes += file.size;
      } else outcome.skipped.push(local);
    }
    await client.chmod(remoteDir, mode & 0o777);
    await client.utimes(remoteDir, Math.round(mtimeMs));
  };
  await copyDir(plan.localPath, root, top.mode, top.mtimeMs);
  return outcome;
}

