import { constants, readFileSync } from 'node:fs';
import { expect, it, type TestContext } from 'vitest';
import { allocAligned, O_DIRECT, type AioFile } from '@vmlink/aio';
import { livenessMs, patternBytes, randomInt, seededRandom } from './helpers.js';
import type { AioSuiteContext } from './setup.js';

const SEED = 0x5eed_a10;
const FILE_SPAN = 1 << 20;

/** One generated operation. Reads record what they saw, so two runs can be compared. */
type Op =
  | { kind: 'write'; position: number; lengths: number[]; seed: number }
  | { kind: 'read'; position: number; lengths: number[]; seed: number }
  | { kind: 'fsync' }
  | { kind: 'fdatasync' };

/** `count` ops over [0, span), sized in multiples of `unit` (1 for buffered, the alignment for O_DIRECT). */
function generateOps(seed: number, count: number, unit: number, span: number): Op[] {
  const random = seededRandom(seed);
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const roll = random();
    if (roll < 0.05) {
      ops.push(random() < 0.5 ? { kind: 'fsync' } : { kind: 'fdatasync' });
      continue;
    }
    const pieces = randomInt(random, 1, 4);
    const lengths = Array.from({ length: pieces }, () => unit * randomInt(random, 1, Math.max(1, Math.floor(16384 / unit))));
    const total = lengths.reduce((a, b) => a + b, 0);
    // Some requests start past the current end of file (sparse writes, reads at EOF).
    const position = unit * randomInt(random, 0, Math.floor((span - total) / unit));
    ops.push({ kind: roll < 0.55 ? 'write' : 'read', position, lengths, seed: i + 1 } as Op);
  }
  return ops;
}

function buffersFor(lengths: number[], direct: boolean, memory: number): Buffer[] {
  return lengths.map((length) => (direct ? allocAligned(length, memory) : Buffer.alloc(length)));
}

/** Runs `ops` on `file` one after the other; returns one record per op (counts and bytes read). */
async function runSequentially(file: AioFile, ops: Op[]): Promise<string[]> {
  const log: string[] = [];
  for (const op of ops) log.push(await runOp(file, op));
  return log;
}

/** Runs `ops` in batches of `width` concurrent requests; the generator keeps each batch's ranges disjoint. */
async function runInBatches(file: AioFile, batches: Op[][]): Promise<string[]> {
  const log: string[] = [];
  for (const batch of batches) log.push(...(await Promise.all(batch.map((op) => runOp(file, op)))));
  return log;
}

async function runOp(file: AioFile, op: Op): Promise<string> {
  if (op.kind === 'fsync' || op.kind === 'fdatasync') {
    await (op.kind === 'fsync' ? file.fsync() : file.fdatasync());
    return op.kind;
  }
  const buffers = buffersFor(op.lengths, file.direct, file.alignment.memory);
  if (op.kind === 'write') {
    const source = patternBytes(op.lengths.reduce((a, b) => a + b, 0), op.seed);
    let at = 0;
    for (const buffer of buffers) at += source.copy(buffer, 0, at);
    const n = buffers.length === 1 ? await file.write(buffers[0]!, op.position) : await file.writev(buffers, op.position);
    return `write ${op.position} -> ${n}`;
  }
  const n = buffers.length === 1 ? await file.read(buffers[0]!, op.position) : await file.readv(buffers, op.position);
  const digest = Buffer.concat(buffers).subarray(0, n).toString('base64');
  return `read ${op.position} -> ${n} ${digest}`;
}

/** Splits the span into `width` slots and confines each op of a batch to its own slot. */
function disjointBatches(seed: number, batches: number, width: number, unit: number): Op[][] {
  const slot = Math.floor(FILE_SPAN / width / unit) * unit;
  const ops = generateOps(seed, batches * width, unit, slot);
  const result: Op[][] = [];
  for (let b = 0; b < batches; b++) {
    result.push(
      ops.slice(b * width, (b + 1) * width).map((op, i) => (op.kind === 'read' || op.kind === 'write' ? { ...op, position: op.position + i * slot } : op)),
    );
  }
  return result;
}

/** The same seeded op sequence on this backend and on the fs reference must match byte for byte. */
export function randomOpTests(ctx: AioSuiteContext): void {
  async function compare(test: TestContext, direct: boolean): Promise<void> {
    if (direct) {
      if (!ctx.backend().capabilities.direct) test.skip(`${ctx.backend().name} does not declare the 'direct' capability`);
      const reason = ctx.directUnsupported();
      if (reason !== undefined) test.skip(reason);
    }
    const flags = direct ? constants.O_RDWR | constants.O_CREAT | O_DIRECT : 'w+';
    const name = direct ? 'random-direct' : 'random';
    const subject = await ctx.backend().open(ctx.path(`${name}-subject`), flags);
    const reference = await ctx.reference().open(ctx.path(`${name}-reference`), 'w+');
    try {
      const unit = direct ? Math.max(subject.alignment.offset, subject.alignment.length) : 1;
      const sequential = generateOps(SEED, 300, unit, FILE_SPAN);
      const subjectLog = await runSequentially(subject, sequential);
      const referenceLog = await runSequentially(reference, sequential);
      subjectLog.forEach((entry, i) => expect(entry, `op ${i}`).toBe(referenceLog[i]));
      // Now concurrent batches over disjoint ranges inside the file (so the result is defined).
      const fill = patternBytes(FILE_SPAN, 1);
      const fillBuffer = direct ? allocAligned(FILE_SPAN, subject.alignment.memory) : Buffer.from(fill);
      fill.copy(fillBuffer);
      await subject.write(fillBuffer, 0);
      await reference.write(fill, 0);
      const batches = disjointBatches(SEED + 1, 25, 8, unit);
      const subjectBatchLog = await runInBatches(subject, batches);
      const referenceBatchLog = await runInBatches(reference, batches);
      subjectBatchLog.forEach((entry, i) => expect(entry, `batched op ${i}`).toBe(referenceBatchLog[i]));
      await subject.fsync();
      const subjectBytes = readFileSync(subject.path);
      const referenceBytes = readFileSync(reference.path);
      expect(subjectBytes.length).toBe(referenceBytes.length);
      expect(subjectBytes.equals(referenceBytes)).toBe(true);
    } finally {
      await Promise.all([subject.close(), reference.close()]);
    }
  }

  // Generous liveness limits: 600 ops each way plus 1 MiB of generated pattern, on 2 shared cores.
  it('a seeded random op sequence is byte-identical to the fs reference (buffered)', (test) => compare(test, false), livenessMs(ctx.setup, 60_000));
  it('a seeded random op sequence is byte-identical to the fs reference (O_DIRECT)', (test) => compare(test, true), livenessMs(ctx.setup, 60_000));
}
