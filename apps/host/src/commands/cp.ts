import { createHash } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { VmlinkError } from '@vmlink/errors';
import type { AgentClient, TransferResult } from '../agent-client.js';
import type { CommonOptions } from '../args.js';
import { type CliOutput, printJson } from '../output.js';
import { ProgressBar } from '../progress.js';
import type { CopyPlan } from '../remote-spec.js';
import { partNameFor, sweepStaleParts } from '../stale-parts.js';

export interface CopyOutcome extends TransferResult {
  direction: CopyPlan['direction'];
  from: string;
  to: string;
  verified: true;
}

function integrityError(what: string, expected: string, actual: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_CHECKSUM_MISMATCH', `${what}: SHA-256 ${actual} does not match the sender's ${expected}; the copy was discarded`);
}

function localError(cause: NodeJS.ErrnoException, localPath: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_LOCAL_FILE', `local file '${localPath}': ${cause.code ?? ''} ${cause.message}`.trim(), { cause });
}

export async function cpCommand(
  client: AgentClient,
  plan: CopyPlan,
  progress: boolean | undefined,
  common: CommonOptions,
  out: CliOutput,
): Promise<number> {
  const progressOut = progress === undefined ? out.stderr : { isTTY: progress, columns: out.stderr.columns ?? 80, write: (t: string) => out.stderr.write(t) };
  const outcome = plan.direction === 'download' ? await download(client, plan, progressOut) : await upload(client, plan, progressOut);
  if (common.json) printJson(out, outcome);
  else out.stdout.write(`${outcome.from} -> ${outcome.to}: ${outcome.size} bytes, sha256 ${outcome.sha256} (verified)\n`);
  return 0;
}

type ProgressTarget = ConstructorParameters<typeof ProgressBar>[2];

/** Local side: write to a temp name in the target directory, fsync, verify, rename. */
async function download(client: AgentClient, plan: CopyPlan, progressOut: ProgressTarget): Promise<CopyOutcome> {
  let target = plan.localPath;
  const existing = await stat(target).catch(() => undefined);
  if (existing?.isDirectory()) target = path.join(target, path.posix.basename(plan.remotePath));
  // Leftovers of earlier runs that were killed (SIGKILL leaves no chance to clean up).
  await sweepStaleParts(path.dirname(target));
  const temp = path.join(path.dirname(target), partNameFor(path.basename(target)));
  let handle;
  try {
    handle = await open(temp, 'wx', 0o644);
  } catch (err) {
    throw localError(err as NodeJS.ErrnoException, target);
  }
  let bar: ProgressBar | undefined;
  let done = false;
  // Ctrl-C mid-download: remove the partial file before dying, like any other failure.
  const onInterrupt = (): void => {
    bar?.clear();
    rmSync(temp, { force: true });
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);
  try {
    const hash = createHash('sha256');
    let size = 0;
    const result = await client.read(
      plan.remotePath,
      async (chunk) => {
        hash.update(chunk);
        // A local failure (ENOSPC, EIO) is ours, not the agent's: exit 73, not 66.
        await handle.write(chunk).catch((err: unknown) => {
          throw localError(err as NodeJS.ErrnoException, target);
        });
        size += chunk.length;
        bar?.advance(chunk.length);
      },
      (total) => {
        bar = new ProgressBar(`download ${path.basename(target)}`, total, progressOut);
      },
    );
    const local = hash.digest('hex');
    if (local !== result.sha256 || size !== result.size) throw integrityError(plan.remotePath, result.sha256, local);
    try {
      await handle.sync();
      await handle.close();
      await rename(temp, target);
    } catch (err) {
      throw localError(err as NodeJS.ErrnoException, target);
    }
    done = true;
    bar?.finish();
    return { direction: 'download', from: `${client.uri}:${plan.remotePath}`, to: target, size, sha256: local, verified: true };
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
    if (!done) {
      bar?.clear();
      await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
    }
  }
}

async function hashFile(localPath: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(localPath, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** Remote side is atomic in the agent; we announce the SHA-256 up front so it can refuse. */
async function upload(client: AgentClient, plan: CopyPlan, progressOut: ProgressTarget): Promise<CopyOutcome> {
  let local: { size: number; sha256: string };
  try {
    const stats = await stat(plan.localPath);
    if (!stats.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
    local = await hashFile(plan.localPath);
  } catch (err) {
    throw localError(err as NodeJS.ErrnoException, plan.localPath);
  }
  let remotePath = plan.remotePath;
  if (remotePath.endsWith('/')) {
    remotePath += path.basename(plan.localPath);
  } else {
    const remote = await client.stat(remotePath).catch(() => undefined);
    if (remote?.type === 'directory') remotePath = `${remotePath}/${path.basename(plan.localPath)}`;
  }
  const bar = new ProgressBar(`upload ${path.basename(plan.localPath)}`, local.size, progressOut);
  async function* source(): AsyncGenerator<Uint8Array> {
    for await (const chunk of createReadStream(plan.localPath, { highWaterMark: 1024 * 1024 })) {
      bar.advance((chunk as Buffer).length);
      yield chunk as Buffer;
    }
  }
  try {
    const result = await client.write(remotePath, source(), local.size, local.sha256);
    if (result.sha256 !== local.sha256 || result.size !== local.size) throw integrityError(remotePath, local.sha256, result.sha256);
    bar.finish();
    return { direction: 'upload', from: plan.localPath, to: `${client.uri}:${remotePath}`, size: result.size, sha256: result.sha256, verified: true };
  } catch (err) {
    bar.clear();
    throw err;
  }
}
