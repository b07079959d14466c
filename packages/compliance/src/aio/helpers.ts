import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { O_DIRECT } from '@vmlink/aio';
import type { AioTestSetup } from './setup.js';

/** A liveness limit of the suite, scaled by the setup's `timeoutScale` (default 1). */
export function livenessMs(setup: AioTestSetup, ms: number): number {
  const scale = setup.timeoutScale ?? 1;
  if (!Number.isFinite(scale) || scale < 1) throw new RangeError(`aio compliance: timeoutScale must be a finite number >= 1; got ${String(scale)}`);
  return Math.round(ms * scale);
}

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same sequence everywhere. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max] from `random`. */
export function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** Deterministic bytes: `length` bytes derived from `seed`. */
export function patternBytes(length: number, seed: number): Buffer {
  const random = seededRandom(seed);
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

let gcFunction: (() => void) | undefined;

/** A full GC, without needing `node --expose-gc` (the flag can be set at run time). */
export function collectGarbage(): void {
  if (gcFunction === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed !== undefined) {
      gcFunction = exposed;
    } else {
      setFlagsFromString('--expose-gc');
      gcFunction = runInNewContext('gc') as () => void;
    }
  }
  gcFunction();
}

/** Open fds of this process. */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Why `dir` cannot host O_DIRECT files, or undefined when it can. */
export function probeDirect(dir: string): string | undefined {
  if (O_DIRECT === 0) return `O_DIRECT does not exist on ${process.platform}`;
  const probe = join(dir, `.direct-probe-${process.pid}`);
  writeFileSync(probe, Buffer.alloc(4096));
  try {
    closeSync(openSync(probe, constants.O_RDONLY | O_DIRECT));
    return undefined;
  } catch (error) {
    return `${dir} does not support O_DIRECT (${(error as { code?: string }).code ?? String(error)})`;
  } finally {
    unlinkSync(probe);
  }
}

/** How a runChild() child ended, with its output. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the child had to be killed because it did not exit by itself. */
  killed: boolean;
}

/** Runs an ESM snippet in a child `node`, killing it after `timeoutMs` if it does not exit by itself. */
export function runChild(source: string, timeoutMs: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}
