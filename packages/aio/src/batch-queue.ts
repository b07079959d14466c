import { watchAbort } from './abort-watch.js';
import type { BatchBuffers, BatchEngine, BatchEngineFactory, BatchLayout } from './batch-engine.js';
import { continuesRun, slowSubmitFlags, whenToSubmit, type RunEnd, type SubmitPolicy } from './batch-policy.js';
import type { StatsRecorder } from './stats.js';
import type { Alignment, Position } from './types.js';

/** `result` of a request the engine's O_DIRECT alignment check refused (below every -errno). */
export const MISALIGNED = -0x7fffffff;
/** `result` of a request withdrawn because its signal aborted (it never ran). */
export const WITHDRAWN = -0x7ffffffe;

/** One request for the engine; `op` is one of the engine's layout.ops codes. */
export interface BatchRequest {
  readonly op: number;
  readonly fd: number;
  /** Offset (read, write, fallocate, discard) or size (truncate). */
  readonly position: Position;
  /** Bytes, for fallocate and discard. */
  readonly length?: Position;
  /** fallocate mode bits. */
  readonly mode?: number;
  /** RWF_* flags (RWF_NOWAIT). */
  readonly rwFlags?: number;
  /** Checked by the engine before submission (O_DIRECT files); undefined = no check. */
  readonly alignment?: Alignment | undefined;
  readonly buffers: BatchBuffers;
  /** On an O_DIRECT file: the device serves it (the submit policy batches those). */
  readonly direct?: boolean;
  /** Aborting withdraws the request while nothing has started it (then `result` is WITHDRAWN). */
  readonly signal?: AbortSignal | undefined;
  /** Called exactly once, with the completion. */
  readonly done: (completion: BatchCompletion) => void;
}

/** How a request ended, as its `done` hears it. */
export interface BatchCompletion {
  readonly request: BatchRequest;
  /** Bytes (>= 0), -errno, MISALIGNED or WITHDRAWN. */
  readonly result: number;
  /** Bytes a failed write transferred before its error. */
  readonly partial: number;
  /** The engine's flag bits (layout.flags). */
  readonly flags: number;
  /** Microseconds from hand-over (or a worker's start) to completion. */
  readonly serviceUs: number;
  /** It rode in a hand-over call slower than `slowSubmitUsPerRequest` per request (it did I/O inside). */
  readonly slowSubmit: boolean;
}

export interface BatchQueueOptions<E extends BatchEngine> {
  readonly layout: BatchLayout;
  /** Builds the engine (the queue owns the completion table it fills). */
  readonly engine: BatchEngineFactory<E>;
  /** Requests in the engine at once (io_submit: the io_setup size); Infinity = no bound. */
  readonly capacity: number;
  /** Completions the engine delivers per callback at most (the completion table's size). */
  readonly completionTableSize: number;
  /** When queued requests go (see whenToSubmit). */
  readonly policy: SubmitPolicy;
  /** Time per request in one hand-over call above which the call did I/O (Infinity: never). */
  readonly slowSubmitUsPerRequest: number;
  /** Time (us) one loop turn spends settling completions before the rest waits for the next turn. */
  readonly completionBudgetUs: number;
  readonly recorder: StatsRecorder;
  /** After each hand-over to the engine (the thread pool grows here). */
  readonly afterSubmit?: () => void;
  /** After each batch of `count` completions is decoded, before they settle. */
  readonly afterComplete?: (count: number) => void;
}

const enum State {
  Staged,
  InEngine,
  Ready,
  Done,
}

class Entry implements BatchCompletion {
  readonly request: BatchRequest;
  state = State.Staged;
  slot = -1;
  result = 0;
  partial = 0;
  flags = 0;
  serviceUs = 0;
  queueWaitUs = 0;
  slowSubmit = false;
  unwatch: (() => void) | undefined = undefined;

  constructor(request: BatchRequest) {
    this.request = request;
  }
}

/** Completions settled between two looks at the clock. */
const SETTLE_GROUP = 8;
/** Chaining on a settled promise queues a plain microtask (queueMicrotask wraps each in an AsyncResource). */
const RESOLVED = Promise.resolve();
const TWO_32 = 4294967296;
/** Queues with requests in their engine: a strong root, so buffers cannot be collected mid-flight. */
const busyQueues = new Set<BatchQueue<BatchEngine>>();

/**
 * The one per-tick batcher between JS and a native engine, for every backend: requests
 * made within a tick are encoded into the engine's request table (its exported layout)
 * and handed over in one call; aborted requests are withdrawn (still staged: dropped;
 * queued in the engine: cancelled together in one call); completions are decoded from
 * the completion table and settled in order within `completionBudgetUs` per loop turn,
 * the rest on the next turn, so a flood of completions cannot hold timers and I/O back.
 *
 * The end of the tick is `process.nextTick`, not `queueMicrotask`: a nextTick queued from
 * a promise reaction runs after the microtask queue has drained, so every request made by
 * the continuations of one completion batch (each a microtask) joins the same hand-over;
 * a microtask flush would run in the middle of them and split the batch.
 */
export class BatchQueue<E extends BatchEngine> {
  readonly engine: E;
  readonly #layout: BatchLayout;
  readonly #options: BatchQueueOptions<E>;
  readonly #recorder: StatsRecorder;
  readonly #completions: Float64Array;
  readonly #completionBudgetMs: number;
  readonly #freeSlots: number[] = [];
  readonly #bySlot: (Entry | undefined)[] = [];
  #requests = new Float64Array(0);
  #status = new Int32Array(0);
  #records = new Float64Array(0);
  #staged: Entry[] = [];
  #stagedDirect = 0;
  /** Runs of contiguous requests among the staged O_DIRECT ones, and where the last one ends (whenToSubmit). */
  #stagedDirectRuns = 0;
  #lastDirectEnd: RunEnd | undefined;
  /** When the oldest staged request was made (performance.now()). */
  #stagedSince = 0;
  #flushScheduled = false;
  #blocked = false;
  #inEngine = 0;
  #unsettled = 0;
  #idleWaiters: (() => void)[] = [];
  #aborting: Entry[] = [];
  /** Decoded completions not settled yet, in order; #readyHead is the next to settle. */
  #ready: (Entry | undefined)[] = [];
  #readyHead = 0;
  #settling = false;
  #deferredTurns = 0;
  #turnStart = 0;
  readonly #settleNextGroup = (): void => this.#settleReady(this.#turnStart);
  readonly #unblockAfterContinuations = (): void => this.#unblock();
  readonly #flushAtTickEnd = (): void => {
    this.#flushScheduled = false;
    if (this.#whenToSubmit() !== 'completion') this.#flush();
  };

  constructor(options: BatchQueueOptions<E>) {
    this.#options = options;
    this.#layout = options.layout;
    this.#recorder = options.recorder;
    this.#completionBudgetMs = options.completionBudgetUs / 1000;
    this.#completions = new Float64Array(options.completionTableSize * options.layout.completionStride);
    this.engine = options.engine(this.#completions, (count) => this.#onComplete(count));
    if (Number.isFinite(options.capacity)) {
      for (let slot = options.capacity - 1; slot >= 0; slot--) this.#freeSlots.push(slot);
      this.#bySlot.length = options.capacity;
    }
  }

  /** Requests enqueued and not yet settled. */
  get unsettled(): number {
    return this.#unsettled;
  }

  /** Requests the engine holds now. */
  get inEngine(): number {
    return this.#inEngine;
  }

  /** Times the completion budget ran out and settling went on at the next loop turn. */
  get completionTurnsDeferred(): number {
    return this.#deferredTurns;
  }

  /** Resolves once every request enqueued so far has settled. */
  idle(): Promise<void> {
    if (this.#unsettled === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Queues a request; it goes to the engine with the others of this tick (or sooner, per the policy). */
  enqueue(request: BatchRequest): void {
    const entry = new Entry(request);
    this.#unsettled++;
    if (request.signal !== undefined) entry.unwatch = watchAbort(request.signal, () => this.#abort(entry));
    if (this.#staged.length === 0) this.#stagedSince = performance.now();
    this.#staged.push(entry);
    if (request.direct === true) this.#stageDirect(request);
    const when = this.#whenToSubmit();
    if (when === 'now') this.#flush();
    else if (when === 'tick') this.#scheduleFlush();
    // 'completion': #onComplete schedules the flush.
  }

  #whenToSubmit(): ReturnType<typeof whenToSubmit> {
    return whenToSubmit(this.#staged.length, this.#stagedDirect, this.#inEngine, this.#options.policy, this.#stagedDirectRuns);
  }

  #stageDirect(request: BatchRequest): void {
    this.#stagedDirect++;
    const { continues, end } = continuesRun(this.#lastDirectEnd, request.fd, request.op, request.position, byteLength(request.buffers));
    if (!continues) this.#stagedDirectRuns++;
    this.#lastDirectEnd = end;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    process.nextTick(this.#flushAtTickEnd);
  }

  #takeSlot(): number {
    const slot = this.#freeSlots.pop();
    if (slot !== undefined) return slot;
    this.#bySlot.push(undefined);
    return this.#bySlot.length - 1;
  }

  #ensureTables(count: number): void {
    const layout = this.#layout;
    if (this.#status.length >= count) return;
    const size = Math.max(count, this.#status.length * 2, 16);
    this.#requests = new Float64Array(size * layout.requestStride);
    this.#status = new Int32Array(size);
    this.#records = new Float64Array((size + 1) * layout.recordStride);
  }

  #flush(): void {
    if (this.#blocked || this.#staged.length === 0) return;
    // Full: a completion frees slots and schedules the next flush (#unblock).
    if (this.#freeSlots.length === 0 && Number.isFinite(this.#options.capacity)) return;
    // Withdrawn entries were settled already: they take no room.
    const live = this.#staged.filter((entry) => entry.state === State.Staged);
    const count = Math.min(live.length, Number.isFinite(this.#options.capacity) ? this.#freeSlots.length : Infinity);
    const batch = count === live.length ? live : live.slice(0, count);
    this.#setStaged(count === live.length ? [] : live.slice(count));
    if (count === 0) return;
    this.#ensureTables(count);
    const { request: fields, requestStride: stride } = this.#layout;
    const table = this.#requests;
    const buffers = new Array<BatchBuffers>(count);
    for (let i = 0; i < count; i++) {
      const entry = batch[i] as Entry;
      const request = entry.request;
      const slot = this.#takeSlot();
      entry.slot = slot;
      const base = i * stride;
      table[base + fields.slot] = slot;
      table[base + fields.op] = request.op;
      table[base + fields.fd] = request.fd;
      writeU64(table, base + fields.positionLow, base + fields.positionHigh, request.position);
      writeU64(table, base + fields.lengthLow, base + fields.lengthHigh, request.length ?? 0);
      table[base + fields.mode] = request.mode ?? 0;
      table[base + fields.rwFlags] = request.rwFlags ?? 0;
      const alignment = request.alignment;
      table[base + fields.alignMemory] = alignment === undefined ? 0 : alignment.memory;
      table[base + fields.alignOffset] = alignment === undefined ? 0 : alignment.offset;
      table[base + fields.alignLength] = alignment === undefined ? 0 : alignment.length;
      buffers[i] = request.buffers;
    }

    const recordCount = this.engine.submit(table, count, buffers, this.#status, this.#records);
    const now = performance.now();
    const stagedWaitUs = (now - this.#stagedSince) * 1000;
    const recordStride = this.#layout.recordStride;
    const records = this.#records;
    for (let r = 0; r < recordCount; r++) this.#recorder.batch(records[r * recordStride] as number, records[r * recordStride + 2] as number);
    const slow = Number.isFinite(this.#options.slowSubmitUsPerRequest) ? slowSubmitFlags(records, recordCount, recordStride, this.#options.slowSubmitUsPerRequest) : undefined;
    let accepted = 0;
    const status = this.#status;
    const codes = this.#layout.status;
    const deferred: Entry[] = [];
    const failed: Entry[] = [];
    for (let i = 0; i < count; i++) {
      const entry = batch[i] as Entry;
      const code = status[i] as number;
      if (code === codes.submitted) {
        entry.slowSubmit = slow !== undefined && slow[accepted++] === true;
        entry.state = State.InEngine;
        entry.queueWaitUs = stagedWaitUs;
        this.#bySlot[entry.slot] = entry;
        this.#inEngine++;
        continue;
      }
      this.#freeSlots.push(entry.slot);
      entry.slot = -1;
      if (code === codes.deferred) deferred.push(entry);
      else {
        entry.result = code === codes.misaligned ? MISALIGNED : -code;
        failed.push(entry);
      }
    }
    if (this.#inEngine > 0) busyQueues.add(this);
    this.#options.afterSubmit?.();
    if (deferred.length > 0) {
      this.#setStaged(deferred.concat(this.#staged));
      this.#blocked = true;
      // Normally a completion unblocks; with nothing in the engine, try again next turn.
      if (this.#inEngine === 0) setImmediate(() => this.#unblock());
    } else if (this.#staged.length > 0 && this.#freeSlots.length > 0) {
      this.#scheduleFlush();
    }
    for (const entry of failed) this.#finish(entry);
  }

  #setStaged(entries: Entry[]): void {
    this.#staged = entries;
    this.#stagedDirect = 0;
    this.#stagedDirectRuns = 0;
    this.#lastDirectEnd = undefined;
    for (const entry of entries) if (entry.request.direct === true) this.#stageDirect(entry.request);
  }

  #unblock(): void {
    this.#blocked = false;
    if (this.#staged.length > 0) this.#scheduleFlush();
  }

  /** A request's signal fired: staged, it is dropped now; in the engine, withdrawn in a microtask (with any others). */
  #abort(entry: Entry): void {
    if (entry.state === State.Staged) {
      entry.result = WITHDRAWN;
      this.#finish(entry);
      return;
    }
    if (entry.state !== State.InEngine || this.engine.cancel === undefined) return;
    this.#aborting.push(entry);
    // One native call for everything aborted in this turn: a signal shared by a big batch
    // fires its callbacks one by one, and withdrawing each on its own would cost a crossing
    // each and give the engine's workers that much longer to start the later ones.
    if (this.#aborting.length === 1) queueMicrotask(() => this.#withdrawAborted());
  }

  #withdrawAborted(): void {
    const aborting = this.#aborting.filter((entry) => entry.state === State.InEngine);
    this.#aborting = [];
    if (aborting.length === 0 || this.engine.cancel === undefined) return;
    const withdrawn = this.engine.cancel(Uint32Array.from(aborting, (entry) => entry.slot));
    for (let i = 0; i < aborting.length; i++) {
      if (withdrawn[i] !== 1) continue; // started: it settles with its real result
      const entry = aborting[i] as Entry;
      this.#releaseSlot(entry);
      entry.result = WITHDRAWN;
      this.#finish(entry);
    }
    if (this.#staged.length > 0) this.#scheduleFlush();
  }

  #releaseSlot(entry: Entry): void {
    this.#bySlot[entry.slot] = undefined;
    this.#freeSlots.push(entry.slot);
    entry.slot = -1;
    this.#inEngine--;
    if (this.#inEngine === 0) busyQueues.delete(this);
  }

  #onComplete(count: number): void {
    const table = this.#completions;
    const { completion: fields, completionStride: stride } = this.#layout;
    const recorder = this.#recorder;
    // Every slot is released before any request settles: a settle may queue new requests.
    for (let i = 0; i < count; i++) {
      const base = i * stride;
      const entry = this.#bySlot[table[base + fields.slot] as number];
      if (entry === undefined) continue;
      this.#releaseSlot(entry);
      entry.result = table[base + fields.result] as number;
      entry.partial = table[base + fields.partial] as number;
      entry.flags = table[base + fields.flags] as number;
      entry.serviceUs = table[base + fields.serviceUs] as number;
      recorder.queueWait(entry.queueWaitUs + (table[base + fields.queueWaitUs] as number));
      recorder.serviceTime(entry.serviceUs);
      entry.state = State.Ready;
      this.#ready.push(entry);
    }
    this.#options.afterComplete?.(count);
    // From a microtask, so that the flush (a nextTick) runs after every continuation these
    // completions start: what they stage goes in the same call as what waited for them
    // (one io_submit, one merged device request for a sequential run), not in the next.
    queueMicrotask(this.#unblockAfterContinuations);
    if (!this.#settling) this.#settleReady(performance.now());
  }

  /**
   * Settles decoded completions in order, SETTLE_GROUP at a time. Each next group runs as
   * a microtask queued behind the continuations the previous group released, so the clock
   * sees what they ran; past the budget, the rest waits for the next loop turn.
   */
  #settleReady(turnStart: number): void {
    this.#settling = true;
    this.#turnStart = turnStart;
    const ready = this.#ready;
    const end = Math.min(this.#readyHead + SETTLE_GROUP, ready.length);
    while (this.#readyHead < end) {
      const entry = ready[this.#readyHead] as Entry;
      ready[this.#readyHead++] = undefined;
      this.#finish(entry);
    }
    if (this.#readyHead === ready.length) {
      this.#ready = [];
      this.#readyHead = 0;
      this.#settling = false;
      return;
    }
    if (performance.now() - turnStart < this.#completionBudgetMs) void RESOLVED.then(this.#settleNextGroup);
    else {
      this.#deferredTurns++;
      setImmediate(() => this.#settleReady(performance.now()));
    }
  }

  #finish(entry: Entry): void {
    entry.state = State.Done;
    entry.unwatch?.();
    this.#unsettled--;
    try {
      entry.request.done(entry);
    } finally {
      if (this.#unsettled === 0 && this.#idleWaiters.length > 0) {
        const waiters = this.#idleWaiters;
        this.#idleWaiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  }
}

function writeU64(table: Float64Array, low: number, high: number, value: Position): void {
  if (typeof value === 'number') {
    table[low] = value % TWO_32;
    table[high] = Math.floor(value / TWO_32);
  } else {
    table[low] = Number(value & 0xffffffffn);
    table[high] = Number(value >> 32n);
  }
}

/** Bytes a request's buffers hold (0 for none). */
function byteLength(buffers: BatchBuffers): number {
  if (buffers === undefined) return 0;
  if (!Array.isArray(buffers)) return (buffers as Uint8Array).byteLength;
  let bytes = 0;
  for (const buffer of buffers as readonly Uint8Array[]) bytes += buffer.byteLength;
  return bytes;
}
