import type { IoSubmitBuffers, IoSubmitContext, IoSubmitLayout } from './native.js';
import type { Alignment, Position, StatsRecorder } from '@vmlink/aio';
import { ioSubmitBinding } from './native.js';
import { whenToSubmit, type SubmitPolicy } from './submit-policy.js';
import { slowSubmitFlags } from './submit-records.js';

export type KernelOp = 'read' | 'write' | 'readv' | 'writev' | 'fsync' | 'fdatasync';

/**
 * How a kernel request ended, as its `settle(res, slowSubmit)` hears it: `res` is bytes
 * (>= 0) or -errno, from io_submit or the completion, or MISALIGNED when the addon's
 * O_DIRECT alignment check refused it before submission. `slowSubmit`: the io_submit call
 * that carried the request took more than `slowSubmitUsPerIocb` per request, i.e. it did
 * I/O inside the call. A buffered NOWAIT read can succeed that way: where the disk answers
 * within the submitting VM exit (a host-cached virtual disk), the readahead it started is
 * complete by the time the kernel checks the page, so success alone does not prove a hit.
 * Two plain arguments, not an object: this runs once per request.
 */
export type KernelSettle = (res: number, slowSubmit: boolean) => void;

/** The `res` of a request the O_DIRECT alignment check refused (not an errno: below every -errno). */
export const MISALIGNED = -0x7fffffff;

export interface KernelQueueOptions extends SubmitPolicy {
  /** Requests in the kernel at once (the io_setup size). */
  readonly maxInFlight: number;
  /** Time per request in one io_submit call above which the call did I/O (see KernelSettle). */
  readonly slowSubmitUsPerIocb: number;
  /**
   * Time (us) one loop turn spends settling completions (with what their continuations
   * run synchronously) before the rest waits for the next turn.
   */
  readonly completionBudgetUs: number;
}

export interface KernelRequest {
  readonly op: KernelOp;
  readonly fd: number;
  readonly position: Position;
  /** One buffer for read/write, a list for readv/writev, none for fsync/fdatasync. */
  readonly buffers: IoSubmitBuffers;
  /** RWF_* flags (RWF_NOWAIT). */
  readonly rwFlags: number;
  /** Checked natively before submission (O_DIRECT files); undefined = no check. */
  readonly alignment: Alignment | undefined;
  /** On an O_DIRECT file: the device serves it (not a page-cache copy inside io_submit). */
  readonly direct: boolean;
  /** Called exactly once, unless the request is withdrawn first. */
  readonly settle: KernelSettle;
}

/** An opaque handle on a queued request (see KernelQueue.withdraw). */
export interface QueueTicket {
  readonly request: KernelRequest;
}

interface Entry {
  readonly request: KernelRequest;
  readonly enqueuedAt: number;
  submittedAt: number;
  withdrawn: boolean;
  slowSubmit: boolean;
  /** The completion's result, once reaped. */
  res: number;
}

/** Completions settled between two looks at the clock. */
const SETTLE_GROUP = 8;

/** Chaining on a settled promise queues a plain microtask (queueMicrotask wraps each in an AsyncResource). */
const RESOLVED = Promise.resolve();

/** Queues with requests in the kernel: a strong root, so their buffers cannot be collected mid-flight. */
const busyQueues = new Set<KernelQueue>();

const TWO_32 = 4294967296;

/**
 * One kernel AIO context plus the JS side of batching: requests made within a tick are
 * queued and handed to the addon in one submit() call (the addon splits them into
 * io_submit calls of up to 32), when `whenToSubmit` says so, at most `maxInFlight` in the
 * kernel at a time. When the kernel says EAGAIN the queue is marked blocked and resubmits
 * from the completion path. Completions are settled in order within `completionBudgetUs`
 * per loop turn; the rest wait for the next turn (setImmediate), so a flood of
 * completions cannot hold timers and I/O callbacks back.
 */
export class KernelQueue {
  readonly maxInFlight: number;
  readonly #policy: SubmitPolicy;
  readonly #slowSubmitUsPerIocb: number;
  readonly #completionBudgetMs: number;
  readonly #context: IoSubmitContext;
  readonly #layout: IoSubmitLayout;
  readonly #recorder: StatsRecorder;
  readonly #opCodes: Readonly<Record<KernelOp, number>>;
  readonly #freeSlots: number[] = [];
  readonly #bySlot: (Entry | undefined)[];
  #pending: Entry[] = [];
  /** O_DIRECT requests in #pending. */
  #pendingDirect = 0;
  #flushScheduled = false;
  #blocked = false;
  #inKernel = 0;
  #destroyed = false;
  /** Reaped completions not settled yet, in order; #readyHead is the next to settle. */
  #ready: (Entry | undefined)[] = [];
  #readyHead = 0;
  #settling = false;
  #deferredTurns = 0;
  /** Start of the loop turn the current settling began in (performance.now()). */
  #turnStart = 0;
  readonly #settleNextGroup = (): void => this.#settleReady(this.#turnStart);

  constructor(options: KernelQueueOptions, recorder: StatsRecorder) {
    const binding = ioSubmitBinding();
    this.maxInFlight = options.maxInFlight;
    this.#policy = { submitThreshold: options.submitThreshold, directSubmitThreshold: options.directSubmitThreshold, directBatch: options.directBatch };
    this.#slowSubmitUsPerIocb = options.slowSubmitUsPerIocb;
    this.#completionBudgetMs = options.completionBudgetUs / 1000;
    this.#recorder = recorder;
    this.#layout = binding.ioSubmitLayout;
    this.#opCodes = this.#layout.ops;
    this.#context = new binding.IoSubmitContext(this.maxInFlight, (count) => this.#onComplete(count));
    this.#bySlot = new Array<Entry | undefined>(this.maxInFlight).fill(undefined);
    for (let slot = this.maxInFlight - 1; slot >= 0; slot--) this.#freeSlots.push(slot);
  }

  /** Requests queued or in the kernel. */
  get busy(): number {
    return this.#inKernel + this.#pending.length + this.#ready.length - this.#readyHead;
  }

  /** The context's eventfd (-1 once destroyed), for leak tests. */
  get eventFd(): number {
    return this.#context.eventFd;
  }

  /** Times the completion budget ran out and settling went on at the next loop turn. */
  get completionTurnsDeferred(): number {
    return this.#deferredTurns;
  }

  get usesRing(): boolean {
    return this.#context.usesRing;
  }

  /** Queues a request; it goes to the kernel with the others of this tick. Returns a ticket for `withdraw`. */
  enqueue(request: KernelRequest): QueueTicket {
    const entry: Entry = { request, enqueuedAt: performance.now(), submittedAt: 0, withdrawn: false, slowSubmit: false, res: 0 };
    this.#pending.push(entry);
    if (request.direct) this.#pendingDirect++;
    // A full enough queue goes now, so the device starts on it while JS makes the rest
    // (like QEMU submitting at max_batch without waiting for the unplug).
    const when = whenToSubmit(this.#pending.length, this.#pendingDirect, this.#inKernel, this.#policy);
    if (when === 'now') this.#flush();
    else if (when === 'tick') this.#scheduleFlush();
    // 'completion': #onComplete schedules the flush.
    return entry;
  }

  /**
   * Takes back a request that is still queued here (its settle is then never called);
   * false once it is in the kernel, where it settles with its real result.
   */
  withdraw(ticket: QueueTicket): boolean {
    const entry = ticket as Entry;
    if (entry.submittedAt !== 0 || entry.withdrawn) return false;
    entry.withdrawn = true;
    return true;
  }

  /** io_destroy and close the eventfd. Call when nothing is queued or in flight. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#context.destroy();
    busyQueues.delete(this);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // nextTick queued from a promise reaction runs after the microtask queue drains, so
    // every request made by the continuations of one completion batch joins one submit.
    process.nextTick(() => {
      this.#flushScheduled = false;
      if (whenToSubmit(this.#pending.length, this.#pendingDirect, this.#inKernel, this.#policy) !== 'completion') this.#flush();
    });
  }

  #flush(): void {
    if (this.#destroyed || this.#blocked) return;
    const live = this.#pending.filter((entry) => !entry.withdrawn);
    const count = Math.min(live.length, this.#freeSlots.length);
    this.#setPending(live.slice(count));
    if (count === 0) return;
    const batch = live.slice(0, count);
    const { fields, requestStride: stride } = this.#layout;
    const table = this.#context.requests;
    const buffers: IoSubmitBuffers[] = new Array<IoSubmitBuffers>(count);
    const slots: number[] = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      const request = (batch[i] as Entry).request;
      const slot = this.#freeSlots.pop() as number;
      slots[i] = slot;
      const base = i * stride;
      const position = request.position;
      table[base + fields.slot] = slot;
      table[base + fields.fd] = request.fd;
      table[base + fields.op] = this.#opCodes[request.op];
      if (typeof position === 'number') {
        table[base + fields.positionLow] = position % TWO_32;
        table[base + fields.positionHigh] = Math.floor(position / TWO_32);
      } else {
        table[base + fields.positionLow] = Number(position & 0xffffffffn);
        table[base + fields.positionHigh] = Number(position >> 32n);
      }
      table[base + fields.rwFlags] = request.rwFlags;
      const alignment = request.alignment;
      table[base + fields.alignMemory] = alignment === undefined ? 0 : alignment.memory;
      table[base + fields.alignOffset] = alignment === undefined ? 0 : alignment.offset;
      table[base + fields.alignLength] = alignment === undefined ? 0 : alignment.length;
      buffers[i] = request.buffers;
    }

    const records = this.#context.submit(count, buffers);
    const now = performance.now();
    const recordStride = this.#layout.submitRecordStride;
    const recordTable = this.#context.submitRecords;
    for (let r = 0; r < records; r++) {
      this.#recorder.batch(recordTable[r * recordStride] as number, recordTable[r * recordStride + 2] as number);
    }
    const slow = slowSubmitFlags(recordTable, records, recordStride, this.#slowSubmitUsPerIocb);
    let accepted = 0;

    const status = this.#context.status;
    const codes = this.#layout.status;
    const deferred: Entry[] = [];
    const failed: [Entry, number][] = [];
    for (let i = 0; i < count; i++) {
      const entry = batch[i] as Entry;
      const slot = slots[i] as number;
      const code = status[i] as number;
      if (code === codes.submitted) {
        entry.slowSubmit = slow[accepted++] === true;
        entry.submittedAt = now;
        this.#bySlot[slot] = entry;
        this.#inKernel++;
        this.#recorder.queueWait((now - entry.enqueuedAt) * 1000);
        continue;
      }
      this.#freeSlots.push(slot);
      if (code === codes.deferred) deferred.push(entry);
      else if (code === codes.misaligned) failed.push([entry, MISALIGNED]);
      else failed.push([entry, -code]);
    }
    if (this.#inKernel > 0) busyQueues.add(this);
    if (deferred.length > 0) {
      this.#setPending(deferred.concat(this.#pending));
      this.#blocked = true;
      // Normally a completion unblocks; with nothing in the kernel, try again next turn.
      if (this.#inKernel === 0) setImmediate(() => this.#unblock());
    } else if (this.#pending.length > 0 && this.#freeSlots.length > 0) {
      this.#scheduleFlush();
    }
    for (const [entry, res] of failed) entry.request.settle(res, false);
  }

  #setPending(entries: Entry[]): void {
    this.#pending = entries;
    let direct = 0;
    for (const entry of entries) if (entry.request.direct) direct++;
    this.#pendingDirect = direct;
  }

  #unblock(): void {
    this.#blocked = false;
    if (this.#pending.length > 0) this.#scheduleFlush();
  }

  #onComplete(count: number): void {
    const completions = this.#context.completions;
    const now = performance.now();
    // Every slot is released before any request settles: a settle may queue new requests.
    for (let i = 0; i < count; i++) {
      const slot = completions[2 * i] as number;
      const entry = this.#bySlot[slot];
      if (entry === undefined) continue;
      this.#bySlot[slot] = undefined;
      this.#freeSlots.push(slot);
      this.#inKernel--;
      this.#recorder.serviceTime((now - entry.submittedAt) * 1000);
      entry.res = completions[2 * i + 1] as number;
      this.#ready.push(entry);
    }
    if (this.#inKernel === 0) busyQueues.delete(this);
    this.#unblock();
    if (!this.#settling) this.#settleReady(now);
  }

  /**
   * Settles reaped completions in order, SETTLE_GROUP at a time. Each next group runs as a
   * microtask queued behind the continuations the previous group released, so the clock
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
      entry.request.settle(entry.res, entry.slowSubmit);
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
}
