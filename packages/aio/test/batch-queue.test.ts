import { describe, expect, it } from 'vitest';
import { BatchQueue, MISALIGNED, StatsRecorder, WITHDRAWN, type BatchBuffers, type BatchCompletion, type BatchEngine, type BatchLayout, type BatchRequest } from '../src/index.js';

// Pure logic of BatchQueue (encoding, slots, withdrawal, decoding, budget) against an
// IN-MEMORY ENGINE DOUBLE: no native code, no I/O. The real engines run the same queue in
// the aio-threadpool and aio-iosubmit tests on real files.

/** A layout shaped like the addon's (batch_layout.h), with its own (shuffled) offsets: the queue must read them, not assume them. */
const LAYOUT: BatchLayout = {
  requestStride: 13,
  request: { slot: 12, op: 0, fd: 1, positionLow: 2, positionHigh: 3, lengthLow: 4, lengthHigh: 5, mode: 6, rwFlags: 7, alignMemory: 8, alignOffset: 9, alignLength: 10 },
  completionStride: 7,
  completion: { slot: 6, result: 0, partial: 1, queueWaitUs: 2, serviceUs: 3, flags: 4 },
  recordStride: 3,
  status: { submitted: 0, deferred: -1, misaligned: -2 },
  flags: { nowaitServed: 1, usedBlkdiscard: 2, servedHere: 4, missedHere: 8, directFd: 16, workerSlept: 32 },
  ops: { read: 10, write: 11 },
};

interface Decoded {
  slot: number;
  op: number;
  fd: number;
  position: bigint;
  length: bigint;
  mode: number;
  rwFlags: number;
  alignMemory: number;
  buffers: BatchBuffers;
}

/** In-memory engine double: records what it was handed, answers with scripted statuses, completes on demand. */
class InMemoryEngineDouble implements BatchEngine {
  readonly handed: Decoded[][] = [];
  readonly cancelled: number[][] = [];
  /** Status per request of the next submit() calls (default: submitted). */
  statuses: number[] = [];
  /** Slots that cancel() withdraws (queued, not started). */
  readonly withdrawable = new Set<number>();
  readonly #completions: Float64Array;
  readonly #onComplete: (count: number) => void;

  constructor(completions: Float64Array, onComplete: (count: number) => void) {
    this.#completions = completions;
    this.#onComplete = onComplete;
  }

  submit(requests: Float64Array, count: number, buffers: readonly BatchBuffers[], status: Int32Array, records: Float64Array): number {
    const f = LAYOUT.request;
    const batch: Decoded[] = [];
    let accepted = 0;
    for (let i = 0; i < count; i++) {
      const b = i * LAYOUT.requestStride;
      batch.push({
        slot: requests[b + f.slot]!,
        op: requests[b + f.op]!,
        fd: requests[b + f.fd]!,
        position: BigInt(requests[b + f.positionLow]!) + (BigInt(requests[b + f.positionHigh]!) << 32n),
        length: BigInt(requests[b + f.lengthLow]!) + (BigInt(requests[b + f.lengthHigh]!) << 32n),
        mode: requests[b + f.mode]!,
        rwFlags: requests[b + f.rwFlags]!,
        alignMemory: requests[b + f.alignMemory]!,
        buffers: buffers[i],
      });
      status[i] = this.statuses.shift() ?? 0;
      if (status[i] === 0) accepted++;
    }
    this.handed.push(batch);
    records[0] = count;
    records[1] = accepted;
    records[2] = 100 * accepted;
    return 1;
  }

  cancel(slots: Uint32Array): Uint8Array {
    this.cancelled.push([...slots]);
    return Uint8Array.from(slots, (slot) => (this.withdrawable.delete(slot) ? 1 : 0));
  }

  /** Delivers completions [slot, result, flags?] in one callback, as the native engines do. */
  complete(done: readonly (readonly [slot: number, result: number, flags?: number])[]): void {
    const c = LAYOUT.completion;
    done.forEach(([slot, result, flags = 0], i) => {
      const b = i * LAYOUT.completionStride;
      this.#completions[b + c.slot] = slot;
      this.#completions[b + c.result] = result;
      this.#completions[b + c.partial] = 0;
      this.#completions[b + c.queueWaitUs] = 5;
      this.#completions[b + c.serviceUs] = 42;
      this.#completions[b + c.flags] = flags;
    });
    this.#onComplete(done.length);
  }
}

function makeQueue(overrides: { capacity?: number; completionBudgetUs?: number; submitThreshold?: number; slowSubmitUsPerRequest?: number } = {}) {
  const recorder = new StatsRecorder();
  const queue = new BatchQueue({
    layout: LAYOUT,
    engine: (completions, onComplete) => new InMemoryEngineDouble(completions, onComplete),
    capacity: overrides.capacity ?? 4,
    completionTableSize: 32,
    policy: { submitThreshold: overrides.submitThreshold ?? Infinity, directSubmitThreshold: Infinity, directBatch: 0 },
    slowSubmitUsPerRequest: overrides.slowSubmitUsPerRequest ?? Infinity,
    completionBudgetUs: overrides.completionBudgetUs ?? 1e6,
    recorder,
  });
  return { queue, engine: queue.engine, recorder };
}

function request(position: number | bigint, done: (c: BatchCompletion) => void, extra: Partial<BatchRequest> = {}): BatchRequest {
  return { op: LAYOUT.ops.read!, fd: 7, position, buffers: new Uint8Array(4), done, ...extra };
}

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

describe('BatchQueue (pure logic, in-memory engine double)', () => {
  it('hands one tick of requests over in one call, each field where the layout says', async () => {
    const { queue, engine, recorder } = makeQueue();
    const bufs = [new Uint8Array(1), new Uint8Array(2)];
    queue.enqueue(request(5, () => {}, { op: LAYOUT.ops.write!, rwFlags: 8, alignment: { memory: 512, offset: 512, length: 512 } }));
    queue.enqueue(request(2n ** 40n + 3n, () => {}, { buffers: bufs, length: 2n ** 33n + 1n, mode: 3 }));
    expect(engine.handed).toHaveLength(0);
    await tick();
    expect(engine.handed).toHaveLength(1);
    const [a, b] = engine.handed[0]!;
    expect(a).toMatchObject({ op: 11, fd: 7, position: 5n, rwFlags: 8, alignMemory: 512, length: 0n });
    expect(b).toMatchObject({ op: 10, position: 2n ** 40n + 3n, length: 2n ** 33n + 1n, mode: 3, alignMemory: 0 });
    expect(b!.buffers).toBe(bufs);
    expect(new Set([a!.slot, b!.slot]).size).toBe(2);
    expect(queue.inEngine).toBe(2);
    expect(recorder.snapshot().batchSize).toMatchObject({ count: 1, max: 2 });
  });

  it('flushes at once at submitThreshold, without waiting for the tick', () => {
    const { queue, engine } = makeQueue({ submitThreshold: 2 });
    queue.enqueue(request(0, () => {}));
    expect(engine.handed).toHaveLength(0);
    queue.enqueue(request(1, () => {}));
    expect(engine.handed).toHaveLength(1);
  });

  it('decodes completions by slot into results, flags and service time, and frees the slots', async () => {
    const { queue, engine, recorder } = makeQueue();
    const seen: BatchCompletion[] = [];
    queue.enqueue(request(0, (c) => seen.push(c)));
    queue.enqueue(request(1, (c) => seen.push(c)));
    await tick();
    const [a, b] = engine.handed[0]!;
    engine.complete([
      [b!.slot, -5, 0],
      [a!.slot, 4, 1],
    ]);
    await queue.idle();
    expect(seen.map((c) => [c.request.position, c.result, c.flags, c.serviceUs])).toEqual([
      [1, -5, 0, 42],
      [0, 4, 1, 42],
    ]);
    expect(queue.inEngine).toBe(0);
    expect(recorder.snapshot().serviceTimeUs.count).toBe(2);
    // The slots are free again: a full capacity's worth goes in the next hand-over.
    for (let i = 0; i < 4; i++) queue.enqueue(request(i, () => {}));
    await tick();
    expect(engine.handed[1]).toHaveLength(4);
  });

  it('never holds more than capacity in the engine; the rest goes after completions', async () => {
    const { queue, engine } = makeQueue({ capacity: 2 });
    const results: number[] = [];
    for (let i = 0; i < 5; i++) queue.enqueue(request(i, (c) => results.push(c.result)));
    await tick();
    expect(engine.handed.map((b) => b.length)).toEqual([2]);
    engine.complete(engine.handed[0]!.map((r) => [r.slot, 1] as const));
    await tick();
    await tick();
    expect(engine.handed.map((b) => b.length)).toEqual([2, 2]);
    engine.complete(engine.handed[1]!.map((r) => [r.slot, 1] as const));
    await tick();
    await tick();
    engine.complete(engine.handed[2]!.map((r) => [r.slot, 1] as const));
    await queue.idle();
    expect(results).toEqual([1, 1, 1, 1, 1]);
  });

  it('settles refused requests with their status: errno as -errno, misaligned as MISALIGNED; requeues deferred ones', async () => {
    const { queue, engine } = makeQueue();
    const seen = new Map<number | bigint, number>();
    engine.statuses = [22, -2, -1, 0];
    for (let i = 0; i < 4; i++) queue.enqueue(request(i, (c) => seen.set(c.request.position, c.result)));
    await tick();
    expect(seen.get(0)).toBe(-22);
    expect(seen.get(1)).toBe(MISALIGNED);
    expect(seen.has(2)).toBe(false);
    // Deferred (the engine was full): blocked until a completion, then handed over again.
    await tick();
    expect(engine.handed).toHaveLength(1);
    engine.complete([[engine.handed[0]![3]!.slot, 9]]);
    await tick();
    await tick();
    expect(engine.handed).toHaveLength(2);
    expect(engine.handed[1]!.map((r) => r.position)).toEqual([2n]);
    engine.complete([[engine.handed[1]![0]!.slot, 9]]);
    await queue.idle();
    expect(seen.get(2)).toBe(9);
  });

  it('withdraws aborted requests: staged ones at once, queued ones in one cancel() call, started ones complete for real', async () => {
    const { queue, engine } = makeQueue({ capacity: 8 });
    const controller = new AbortController();
    const seen = new Map<number | bigint, number>();
    for (let i = 0; i < 3; i++) queue.enqueue(request(i, (c) => seen.set(c.request.position, c.result), { signal: controller.signal }));
    await tick();
    const handed = engine.handed[0]!;
    engine.withdrawable.add(handed[0]!.slot);
    engine.withdrawable.add(handed[2]!.slot);
    queue.enqueue(request(3, (c) => seen.set(c.request.position, c.result), { signal: controller.signal }));
    controller.abort();
    expect(seen.get(3)).toBe(WITHDRAWN); // still staged: dropped synchronously
    await Promise.resolve();
    expect(engine.cancelled).toEqual([handed.map((r) => r.slot)]);
    expect(seen.get(0)).toBe(WITHDRAWN);
    expect(seen.get(2)).toBe(WITHDRAWN);
    expect(seen.has(1)).toBe(false); // a worker had started it
    engine.complete([[handed[1]!.slot, 4]]);
    await queue.idle();
    expect(seen.get(1)).toBe(4);
    await tick();
    // The withdrawn staged request never reached the engine, and its slot is not taken.
    expect(engine.handed).toHaveLength(1);
    expect(queue.inEngine).toBe(0);
  });

  it('a staged withdrawn request takes no room from the next hand-over', async () => {
    const { queue, engine } = makeQueue({ capacity: 1 });
    const controller = new AbortController();
    queue.enqueue(request(0, () => {}));
    await tick();
    for (let i = 1; i < 4; i++) queue.enqueue(request(i, () => {}, { signal: controller.signal }));
    controller.abort();
    let last = 0;
    queue.enqueue(request(9, (c) => (last = c.result)));
    engine.complete([[engine.handed[0]![0]!.slot, 1]]);
    await tick();
    await tick();
    expect(engine.handed[1]!.map((r) => r.position)).toEqual([9n]);
    engine.complete([[engine.handed[1]![0]!.slot, 5]]);
    await queue.idle();
    expect(last).toBe(5);
  });

  it('marks requests of a hand-over slower than slowSubmitUsPerRequest', async () => {
    const { queue, engine } = makeQueue({ slowSubmitUsPerRequest: 50 }); // the double reports 100 us per request
    const slow: boolean[] = [];
    queue.enqueue(request(0, (c) => slow.push(c.slowSubmit)));
    await tick();
    engine.complete([[engine.handed[0]![0]!.slot, 4]]);
    await queue.idle();
    expect(slow).toEqual([true]);
  });

  it('settles past the completion budget on a later loop turn, in order', async () => {
    const { queue, engine } = makeQueue({ capacity: 32, completionBudgetUs: 0 });
    const order: string[] = [];
    for (let i = 0; i < 20; i++) queue.enqueue(request(i, () => order.push(`r${i}`)));
    await tick();
    setImmediate(() => order.push('turn'));
    engine.complete(engine.handed[0]!.map((r) => [r.slot, 1] as const)); // one wake-up with 20
    await queue.idle();
    const reads = order.filter((e) => e !== 'turn');
    expect(reads).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
    // Budget 0: the first group of 8 settles in the wake-up, the rest after a loop turn.
    expect(order.indexOf('turn')).toBe(8);
    expect(queue.completionTurnsDeferred).toBeGreaterThan(0);
  });

  it('idle() resolves once everything enqueued has settled', async () => {
    const { queue, engine } = makeQueue();
    let idle = false;
    await queue.idle();
    queue.enqueue(request(0, () => {}));
    void queue.idle().then(() => (idle = true));
    await tick();
    expect(idle).toBe(false);
    engine.complete([[engine.handed[0]![0]!.slot, 1]]);
    await queue.idle();
    expect(idle).toBe(true);
  });
});
