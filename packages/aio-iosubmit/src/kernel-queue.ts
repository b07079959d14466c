import type { IoSubmitBuffers, IoSubmitContext, IoSubmitLayout } from './native.js';
import type { Alignment, Position, StatsRecorder } from '@vmlink/aio';
import { ioSubmitBinding } from './native.js';

export type KernelOp = 'read' | 'write' | 'readv' | 'writev' | 'fsync' | 'fdatasync';

/** How a kernel request ended: `res` is bytes (>= 0) or -errno, from io_submit or the completion. */
/**
 * `slowSubmit`: the io_submit call that carried the request took more than
 * SLOW_SUBMIT_US_PER_IOCB per request, i.e. it did I/O inside the call. A buffered NOWAIT
 * read can succeed that way: where the disk answers within the submitting VM exit (a
 * host-cached virtual disk), the readahead it started is complete by the time the kernel
 * checks the page, so success alone does not prove a cache hit.
 */
export type KernelOutcome = { readonly kind: 'done'; readonly res: number; readonly slowSubmit?: boolean } | { readonly kind: 'misaligned' };

/** Time per request in one io_submit call above which the call did I/O (a cached 4 KiB copy takes ~2 us). */
export const SLOW_SUBMIT_US_PER_IOCB = 20;

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
  readonly settle: (outcome: KernelOutcome) => void;
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
}

/** Queues with requests in the kernel: a strong root, so their buffers cannot be collected mid-flight. */
const busyQueues = new Set<KernelQueue>();

const TWO_32 = 4294967296;

/**
 * One kernel AIO context plus the JS side of batching: requests made within a tick are
 * queued and handed to the addon in one submit() call at the end of the tick, or as soon
 * as `submitThreshold` are queued (the addon splits them into io_submit calls of up to
 * 32), at most `maxInFlight` in the kernel at a time. When the
 * kernel says EAGAIN the queue is marked blocked and resubmits from the completion path.
 */
export class KernelQueue {
  readonly maxInFlight: number;
  readonly #submitThreshold: number;
  readonly #directSubmitThreshold: number;
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

  /**
   * `submitThreshold`: queued requests that trigger a submit at once instead of at the end
   * of the tick; `directSubmitThreshold`: the same counting only O_DIRECT requests, which
   * the device serves, so the sooner the first goes the sooner the device works (a
   * page-cache hit is a copy inside io_submit, where only the number of calls counts).
   */
  constructor(maxInFlight: number, thresholds: { submit: number; directSubmit: number }, recorder: StatsRecorder) {
    const binding = ioSubmitBinding();
    this.maxInFlight = maxInFlight;
    this.#submitThreshold = thresholds.submit;
    this.#directSubmitThreshold = thresholds.directSubmit;
    this.#recorder = recorder;
    this.#layout = binding.ioSubmitLayout;
    this.#opCodes = this.#layout.ops;
    this.#context = new binding.IoSubmitContext(maxInFlight, (count) => this.#onComplete(count));
    this.#bySlot = new Array<Entry | undefined>(maxInFlight).fill(undefined);
    for (let slot = maxInFlight - 1; slot >= 0; slot--) this.#freeSlots.push(slot);
  }

  /** Requests queued or in the kernel. */
  get busy(): number {
    return this.#inKernel + this.#pending.length;
  }

  /** The context's eventfd (-1 once destroyed), for leak tests. */
  get eventFd(): number {
    return this.#context.eventFd;
  }

  get usesRing(): boolean {
    return this.#context.usesRing;
  }

  /** Queues a request; it goes to the kernel with the others of this tick. Returns a ticket for `withdraw`. */
  enqueue(request: KernelRequest): QueueTicket {
    const entry: Entry = { request, enqueuedAt: performance.now(), submittedAt: 0, withdrawn: false, slowSubmit: false };
    this.#pending.push(entry);
    if (request.direct) this.#pendingDirect++;
    // A full enough queue goes now, so the device starts on it while JS makes the rest
    // (like QEMU submitting at max_batch without waiting for the unplug).
    if (this.#pending.length >= this.#submitThreshold || this.#pendingDirect >= this.#directSubmitThreshold) this.#flush();
    else this.#scheduleFlush();
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
      this.#flush();
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
    // The records cover the accepted requests in order: tell each request whether its call was slow.
    let record = -1;
    let leftInRecord = 0;
    let slowRecord = false;

    const status = this.#context.status;
    const codes = this.#layout.status;
    const deferred: Entry[] = [];
    const failed: [Entry, KernelOutcome][] = [];
    for (let i = 0; i < count; i++) {
      const entry = batch[i] as Entry;
      const slot = slots[i] as number;
      const code = status[i] as number;
      if (code === codes.submitted) {
        while (leftInRecord === 0 && record + 1 < records) {
          record++;
          const accepted = recordTable[record * recordStride + 1] as number;
          leftInRecord = accepted;
          slowRecord = accepted > 0 && (recordTable[record * recordStride + 2] as number) > accepted * SLOW_SUBMIT_US_PER_IOCB;
        }
        leftInRecord--;
        entry.slowSubmit = slowRecord;
        entry.submittedAt = now;
        this.#bySlot[slot] = entry;
        this.#inKernel++;
        this.#recorder.queueWait((now - entry.enqueuedAt) * 1000);
        continue;
      }
      this.#freeSlots.push(slot);
      if (code === codes.deferred) deferred.push(entry);
      else if (code === codes.misaligned) failed.push([entry, { kind: 'misaligned' }]);
      else failed.push([entry, { kind: 'done', res: -code }]);
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
    for (const [entry, outcome] of failed) entry.request.settle(outcome);
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
    const done: Entry[] = [];
    const results: number[] = [];
    for (let i = 0; i < count; i++) {
      const slot = completions[2 * i] as number;
      const entry = this.#bySlot[slot];
      if (entry === undefined) continue;
      this.#bySlot[slot] = undefined;
      this.#freeSlots.push(slot);
      this.#inKernel--;
      this.#recorder.serviceTime((now - entry.submittedAt) * 1000);
      done.push(entry);
      results.push(completions[2 * i + 1] as number);
    }
    if (this.#inKernel === 0) busyQueues.delete(this);
    this.#unblock();
    for (let i = 0; i < done.length; i++) {
      const entry = done[i] as Entry;
      entry.request.settle({ kind: 'done', res: results[i] as number, slowSubmit: entry.slowSubmit });
    }
  }
}
