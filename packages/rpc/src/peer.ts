import { EventEmitter } from 'node:events';
import type { Duplex, Readable } from 'node:stream';
import { abortError, invalidArgType, validateAbortSignal, validateFunction, validateInteger, validateObject } from '@vmlink/errors';
import { CreditGate, InboundBody, pumpBody, type BodySource } from './body.js';
import type { BudgetMember, RpcMemoryBudget } from './budget.js';
import { FrameDecoder, type FrameSink } from './decoder.js';
import { RpcError, RpcErrorCode, toWireError } from './errors.js';
import { DEFAULT_MAX_FRAME_SIZE, MAX_ID, MIN_FRAME_LENGTH, type Frame, type WireError } from './frame.js';
import { FrameWriter, closedError } from './writer.js';

export interface HandlerContext {
  readonly method: string;
  /** Aborted when the caller cancels (abort, timeout) or the connection closes. */
  readonly signal: AbortSignal;
  /**
   * The request's streamed body, if the caller sent one. Read it or destroy it: what is
   * unread when the handler returns is released, unless the handler returns
   * `withBody(result, source, { keepRequestBody: true })`. It emits `'received'`
   * (error?) the moment the caller's END arrives, before its last bytes are read.
   */
  readonly body: Readable | undefined;
  readonly peer: RpcPeer;
}

/** A method handler: gets `params`, returns a JSON-able result (or `withBody(...)`). */
export type Handler = (params: unknown, context: HandlerContext) => unknown;

export interface WithBodyOptions {
  /**
   * The handler goes on reading its request body while the response body streams (one
   * request carries both directions of a conversation, like a forwarded TCP connection).
   * The request body is then not released when the handler returns: it stays open, with
   * its flow control, until it ends, the handler destroys it, the response body fails
   * (its source fails, or the caller stops reading it) or the connection closes. A
   * response body that ends normally leaves it open (a half-close). Default false.
   */
  readonly keepRequestBody?: boolean;
}

/** A handler result with a streamed body: `return withBody({ size }, fs.createReadStream(p))`. */
export class BodyResult {
  readonly keepRequestBody: boolean;

  constructor(
    readonly result: unknown,
    readonly body: BodySource,
    options: WithBodyOptions = {},
  ) {
    validateObject(options, 'options');
    const keep = options.keepRequestBody ?? false;
    if (typeof keep !== 'boolean') throw invalidArgType('options.keepRequestBody', 'a boolean', keep);
    this.keepRequestBody = keep;
  }
}

export function withBody(result: unknown, body: BodySource, options?: WithBodyOptions): BodyResult {
  return new BodyResult(result, body, options);
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Milliseconds until the call fails with ERR_VMLINK_RPC_TIMEOUT (default: the peer's `defaultTimeout`). */
  readonly timeout?: number;
  /** A streamed request body (a Readable, any (async) iterable of Uint8Array, or one Uint8Array). */
  readonly body?: BodySource;
}

export interface RpcResponse {
  readonly result: unknown;
  /** The response's streamed body, if the handler returned one. */
  readonly body: Readable | undefined;
}

export interface RpcPeerOptions {
  /** Largest frame accepted (the length prefix is checked before any allocation). Default 4 MiB. */
  readonly maxFrameSize?: number;
  /** Receive window per inbound streamed body, in bytes. Default 1 MiB. */
  readonly streamWindow?: number;
  /** Largest CHUNK payload sent. Default 64 KiB (and below maxFrameSize). */
  readonly chunkSize?: number;
  /** Requests handled at once; beyond it we stop reading the connection. Default 64. */
  readonly maxConcurrentRequests?: number;
  /** Timeout for calls that give none, in ms. Default: none. */
  readonly defaultTimeout?: number;
  readonly handlers?: Readonly<Record<string, Handler>>;
  /**
   * Output bytes queued on the connection (replies, errors, control frames the remote has
   * not read yet: the stream's `writableLength`) above which the peer stops reading the
   * connection; it reads again once they drain. Raised to the stream's
   * `writableHighWaterMark` if below it. Default 1 MiB.
   */
  readonly maxWriteBuffer?: number;
  /**
   * Close the connection (ERR_VMLINK_IDLE_TIMEOUT) after this many ms with no complete
   * frame received and nothing in flight (no call pending, no request running, no body
   * open). Checked by one timer: the close comes between 1x and 2x this. Default 0: never.
   */
  readonly idleTimeout?: number;
  /**
   * Close the connection (ERR_VMLINK_FRAME_TIMEOUT) when a frame whose first byte arrived
   * is not complete this many ms later (a slowloris sender). The clock stops while the
   * peer itself is not reading. Default 0: never.
   */
  readonly frameTimeout?: number;
  /** A memory budget shared with other peers (`createMemoryBudget(bytes)`). Default: none. */
  readonly budget?: RpcMemoryBudget;
  /**
   * Malformed frames tolerated on the connection; one more condemns it: it is no longer
   * decoded, nothing more is reported about it, and it is closed (ERR_VMLINK_BAD_FRAMES).
   * Default 16.
   */
  readonly maxBadFrames?: number;
}

export interface RpcPeerEventMap {
  /** The connection closed; every pending call has been rejected. */
  close: [error: Error | undefined];
  /**
   * Something went wrong that has no caller to report to: a malformed frame we
   * received (and answered), an error frame the remote sent about us, a failing or
   * unknown notification. Informational: the peer carries on.
   */
  warning: [error: RpcError];
  /**
   * A limit bit (emitted once per code per peer, so it can be logged once):
   * ERR_VMLINK_WRITE_BACKLOG and ERR_VMLINK_MEMORY_BUDGET (reading paused, the peer
   * carries on), ERR_VMLINK_IDLE_TIMEOUT, ERR_VMLINK_FRAME_TIMEOUT and
   * ERR_VMLINK_BAD_FRAMES (the connection is closed with this error).
   */
  limit: [error: RpcError];
}

/** What one peer holds in memory right now, in bytes. */
export interface RpcPeerMemory {
  /** Output queued on the connection, not yet taken by the remote (`writableLength`). */
  readonly writeQueued: number;
  /** The frame being received (at most maxFrameSize). */
  readonly frame: number;
  /** Bytes read but held undecoded while reading is paused (about one read chunk). */
  readonly held: number;
  /** Received body bytes not read by their consumer yet (at most streamWindow per body). */
  readonly bodies: number;
  /** Requests read and waiting for a handler slot (their wire bytes; at most about one read chunk). */
  readonly queued: number;
  readonly total: number;
}

/**
 * A call of ours waiting for its answer. A class, not closures: a plain call (no signal,
 * no timeout, no body) costs this object and its promise, nothing per call besides.
 */
class OutgoingCall {
  settled = false;
  requestSent = false;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;

  constructor(
    readonly id: number,
    readonly method: string,
    readonly stream: number | undefined,
    readonly wantBody: boolean,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (value: unknown) => void,
    readonly reject: (error: Error) => void,
  ) {}
}
interface OutboundStream {
  readonly gate: CreditGate;
}

const MAX_TIMEOUT = 0x7fff_ffff;

type RequestFrame = Extract<Frame, { type: 'REQUEST' }>;

interface WaitingRequest {
  readonly frame: RequestFrame;
  readonly body: InboundBody | undefined;
  readonly bytes: number;
}

/** Why the peer is not reading its connection (bits: several can hold at once). */
const PAUSE_CONCURRENCY = 1;
const PAUSE_WRITE = 2;
const PAUSE_BUDGET = 4;

/** Warnings of one code: the first WARNING_BURST of a window go out, the rest become one summary. */
const WARNING_BURST = 10;
const WARNING_WINDOW_MS = 1000;

interface WarningWindow {
  ends: number;
  emitted: number;
  suppressed: number;
  last: RpcError | undefined;
}

/**
 * A request being handled, and the context its handler gets. Its AbortSignal is made
 * only if the handler asks for it (AbortController is costly on a path taken once per call).
 */
class IncomingCall implements HandlerContext {
  cancelled = false;
  private controller: AbortController | undefined;
  private reason: unknown;

  constructor(
    readonly id: number,
    readonly method: string,
    readonly body: InboundBody | undefined,
    readonly peer: RpcPeer,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.cancelled) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  cancel(reason: unknown): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

function validateOptionalMs(value: unknown, name: string): number {
  if (value === undefined) return 0;
  return validateInteger(value, name, 0, MAX_TIMEOUT);
}

function validateTimeout(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  return validateInteger(value, name, 1, MAX_TIMEOUT);
}

function fromWire(error: WireError): RpcError {
  return new RpcError(error.code, error.message, { data: error.data, remote: true });
}

/**
 * One end of an RPC conversation over any Duplex (a @vmlink/transport Connection, a
 * socket...). Both ends are symmetric: each can register handlers and make calls.
 */
export class RpcPeer extends EventEmitter<RpcPeerEventMap> implements BudgetMember {
  readonly maxFrameSize: number;
  /** The effective write cap (see `maxWriteBuffer`). */
  readonly maxWriteBuffer: number;
  private readonly streamWindow: number;
  private readonly chunkSize: number;
  private readonly maxConcurrent: number;
  private readonly defaultTimeout: number | undefined;
  private readonly handlers = new Map<string, Handler>();
  private readonly decoder: FrameDecoder;
  private readonly writer: FrameWriter;
  private readonly calls = new Map<number, OutgoingCall>();
  private readonly incoming = new Map<number, IncomingCall>();
  private readonly inbound = new Map<number, InboundBody>();
  private readonly outbound = new Map<number, OutboundStream>();
  /** Requests read while maxConcurrentRequests were running, or a backlog or the budget stopped us (reading is paused). */
  private readonly waiting: WaitingRequest[] = [];
  /** Wire bytes of the requests in `waiting` (charged to a budget). */
  private waitingBytes = 0;
  private nextId = 1;
  private nextStream = 1;
  private active = 0;
  private closeError: Error | undefined;
  private isClosed = false;
  private readonly sink: FrameSink;
  private readonly idleTimeout: number;
  private readonly frameTimeout: number;
  private readonly budget: RpcMemoryBudget | undefined;
  private readonly maxBadFrames: number;
  private pausedBy = 0;
  private badFrames = 0;
  private peakWrite = 0;
  private readonly limitsHit = new Set<string>();
  private idleTimer: NodeJS.Timeout | undefined;
  private lastActive = 0;
  private frameTimer: NodeJS.Timeout | undefined;
  /** decoder.framesEnded when the frame timer was armed: a different value means a new frame. */
  private frameMark = -1;
  private frameStarted = 0;
  private warnings: Map<string, WarningWindow> | undefined;
  private warningTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly connection: Duplex,
    options: RpcPeerOptions = {},
  ) {
    super();
    validateObject(options, 'options');
    this.maxFrameSize = validateInteger(options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE, 'options.maxFrameSize', 1024, 0xffff_ffff);
    this.streamWindow = validateInteger(options.streamWindow ?? 1024 * 1024, 'options.streamWindow', 1, 0x7fff_ffff);
    const maxChunk = this.maxFrameSize - MIN_FRAME_LENGTH - 64; // room for the CHUNK header
    this.chunkSize = validateInteger(options.chunkSize ?? Math.min(64 * 1024, maxChunk), 'options.chunkSize', 1, maxChunk);
    this.maxConcurrent = validateInteger(options.maxConcurrentRequests ?? 64, 'options.maxConcurrentRequests', 1, 1_000_000);
    this.defaultTimeout = validateTimeout(options.defaultTimeout, 'options.defaultTimeout');
    if (options.handlers !== undefined) {
      validateObject(options.handlers, 'options.handlers');
      for (const [method, handler] of Object.entries(options.handlers)) this.handle(method, handler as Handler);
    }
    const maxWrite = validateInteger(options.maxWriteBuffer ?? 1024 * 1024, 'options.maxWriteBuffer', 1, Number.MAX_SAFE_INTEGER);
    this.maxWriteBuffer = Math.max(maxWrite, connection.writableHighWaterMark);
    this.idleTimeout = validateOptionalMs(options.idleTimeout, 'options.idleTimeout');
    this.frameTimeout = validateOptionalMs(options.frameTimeout, 'options.frameTimeout');
    this.maxBadFrames = validateInteger(options.maxBadFrames ?? 16, 'options.maxBadFrames', 0, 0x7fff_ffff);
    // Checked by shape, not instanceof: the ESM and CJS builds each have their own class.
    const budget = options.budget as Partial<RpcMemoryBudget> | undefined;
    if (budget !== undefined && (budget === null || typeof budget.charge !== 'function' || typeof budget.join !== 'function' || typeof budget.leave !== 'function')) {
      throw invalidArgType('options.budget', 'an RpcMemoryBudget (createMemoryBudget)', options.budget);
    }
    this.budget = budget as RpcMemoryBudget | undefined;
    this.decoder = new FrameDecoder(this.maxFrameSize);
    this.writer = new FrameWriter(connection);

    this.sink = {
      frame: (frame) => this.dispatch(frame),
      malformed: (error, id) => this.onMalformed(error, id),
    };
    connection.on('data', (chunk: Buffer) => this.onData(chunk));
    // Replies the remote did not read have drained: read again (write backlog, budget).
    connection.on('drain', () => this.onDrain());
    this.budget?.join(this);
    if (this.idleTimeout > 0) {
      this.lastActive = performance.now();
      this.idleTimer = setTimeout(() => this.checkIdle(), this.idleTimeout);
      this.idleTimer.unref();
    }
    connection.on('end', () => this.shutdown(undefined));
    connection.on('error', (error: Error) => this.shutdown(error));
    connection.on('close', () => this.shutdown(undefined));
    // The peer owns the flow from now on: a 'data' listener does not resume a stream the
    // caller paused explicitly (readableFlowing === false), and nothing else would.
    connection.resume();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Requests being handled right now. */
  get activeRequests(): number {
    return this.active;
  }

  /** Calls waiting for their response. */
  get pendingCalls(): number {
    return this.calls.size;
  }

  /** Bytes held by the frame decoder for an incomplete frame (at most maxFrameSize). */
  get decoderBufferedBytes(): number {
    return this.decoder.bufferedBytes;
  }

  /** Output bytes queued on the connection that the remote has not taken yet. */
  get writeBufferedBytes(): number {
    return this.writer.queuedBytes;
  }

  /** The most output ever queued after a reply of ours (at most maxWriteBuffer plus one frame). */
  get peakWriteBufferedBytes(): number {
    return this.peakWrite;
  }

  /** True while the peer is not reading its connection (backpressure, budget, concurrency). */
  get readingPaused(): boolean {
    return this.pausedBy !== 0;
  }

  /** What this peer holds in memory now (what a shared budget is charged). */
  get memory(): RpcPeerMemory {
    const writeQueued = this.writer.queuedBytes;
    const frame = this.decoder.bufferedBytes;
    const held = this.decoder.heldBytes;
    const bodies = this.bodyBytes();
    const queued = this.waitingBytes;
    return { writeQueued, frame, held, bodies, queued, total: writeQueued + frame + held + bodies + queued };
  }

  private bodyBytes(): number {
    let bytes = 0;
    for (const body of this.inbound.values()) bytes += body.bufferedBytes;
    return bytes;
  }

  /** Register `handler` for `method` (replacing any earlier one). */
  handle(method: string, handler: Handler): this {
    if (typeof method !== 'string' || method.length === 0 || method.length > 256) {
      throw invalidArgType('method', 'a string of 1..256 characters', method);
    }
    validateFunction(handler, 'handler');
    this.handlers.set(method, handler);
    return this;
  }

  unhandle(method: string): this {
    this.handlers.delete(method);
    return this;
  }

  /** Call `method` and resolve with its result (a response body, if any, is discarded). */
  call(method: string, params?: unknown, options?: CallOptions): Promise<unknown> {
    return this.startCall(method, params, options, false) as Promise<unknown>;
  }

  /** Call `method` and resolve with its result and streamed response body. */
  request(method: string, params?: unknown, options?: CallOptions): Promise<RpcResponse> {
    return this.startCall(method, params, options, true) as Promise<RpcResponse>;
  }

  private startCall(method: string, params: unknown, options: CallOptions | undefined, wantBody: boolean): Promise<unknown> {
    let timeout = this.defaultTimeout;
    let signal: AbortSignal | undefined;
    let body: BodySource | undefined;
    if (typeof method !== 'string' || method.length === 0 || method.length > 256) {
      return Promise.reject(invalidArgType('method', 'a string of 1..256 characters', method));
    }
    if (options !== undefined) {
      try {
        validateObject(options, 'options');
        validateAbortSignal(options.signal, 'options.signal');
        timeout = validateTimeout(options.timeout, 'options.timeout') ?? this.defaultTimeout;
      } catch (error) {
        return Promise.reject(error);
      }
      ({ signal, body } = options as CallOptions);
      if (signal?.aborted) return Promise.reject(abortError(signal));
    }
    if (this.isClosed) return Promise.reject(closedError(this.closeError));

    const id = this.takeCallId();
    const stream = body === undefined ? undefined : this.takeStreamId();
    let resolve!: (value: unknown) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const call = new OutgoingCall(id, method, stream, wantBody, signal, resolve, reject);
    this.calls.set(id, call);
    if (signal) {
      const onAbort = (): void => this.giveUp(call, abortError(signal));
      call.onAbort = onAbort;
      signal.addEventListener('abort', onAbort, { once: true });
    }
    if (timeout !== undefined) {
      const ms = timeout;
      call.timer = setTimeout(() => this.giveUp(call, new RpcError(RpcErrorCode.TIMEOUT, `call '${method}' timed out after ${ms} ms`)), ms);
    }
    // Wait for room before sending: a peer that stops reading stops new calls here.
    if (this.writer.canWrite) this.sendRequest(call, params, body);
    else {
      this.writer.ready().then(
        () => this.sendRequest(call, params, body),
        (error: Error) => this.giveUp(call, error),
      );
    }
    return promise;
  }

  /** Ids are u32 on the wire: after MAX_ID they start again at 1, skipping any still in use. */
  private takeCallId(): number {
    let id = this.nextId;
    while (this.calls.has(id)) id = id === MAX_ID ? 1 : id + 1;
    this.nextId = id === MAX_ID ? 1 : id + 1;
    return id;
  }

  private takeStreamId(): number {
    let stream = this.nextStream;
    while (this.outbound.has(stream)) stream = stream === MAX_ID ? 1 : stream + 1;
    this.nextStream = stream === MAX_ID ? 1 : stream + 1;
    return stream;
  }

  private sendRequest(call: OutgoingCall, params: unknown, body: BodySource | undefined): void {
    if (call.settled) return;
    const { id, method, stream } = call;
    let gate: CreditGate | undefined;
    if (stream !== undefined) {
      gate = new CreditGate();
      this.outbound.set(stream, { gate });
    }
    try {
      this.writer.write({ type: 'REQUEST', id, method, params, stream });
    } catch {
      if (stream !== undefined) this.outbound.delete(stream);
      this.giveUp(call, invalidArgType('params', 'JSON-serialisable', params));
      return;
    }
    call.requestSent = true;
    // A body that fails or is stopped ends with an END/STOP on the wire; the call
    // itself is settled by the handler's answer.
    if (stream !== undefined && gate && body !== undefined) this.startPump(body, stream, gate);
  }

  /** Mark `call` settled and drop what it holds; false if it already was. */
  private settle(call: OutgoingCall): boolean {
    if (call.settled) return false;
    call.settled = true;
    this.calls.delete(call.id);
    if (this.idleTimeout > 0) this.lastActive = performance.now();
    if (call.timer) clearTimeout(call.timer);
    if (call.onAbort) call.signal?.removeEventListener('abort', call.onAbort);
    return true;
  }

  /** Our side gave up on `call` (abort, timeout, connection gone before sending). */
  private giveUp(call: OutgoingCall, error: Error): void {
    if (!this.settle(call)) return;
    if (call.requestSent && this.writer.open) this.writer.write({ type: 'CANCEL', id: call.id });
    if (call.stream !== undefined) this.stopOutbound(call.stream, error);
    call.reject(error);
  }

  private answered(call: OutgoingCall, response: RpcResponse): void {
    if (!this.settle(call)) response.body?.destroy();
    else if (call.wantBody) call.resolve(response);
    else {
      response.body?.destroy();
      call.resolve(response.result);
    }
  }

  private failed(call: OutgoingCall, error: Error): void {
    if (!this.settle(call)) return;
    if (call.stream !== undefined) this.stopOutbound(call.stream, error);
    call.reject(error);
  }

  /** Send a notification (no reply). Throws ERR_VMLINK_RPC_CLOSED once closed. */
  notify(method: string, params?: unknown): void {
    if (typeof method !== 'string' || method.length === 0 || method.length > 256) {
      throw invalidArgType('method', 'a string of 1..256 characters', method);
    }
    if (this.isClosed) throw closedError(this.closeError);
    try {
      this.writer.write({ type: 'NOTIFY', method, params });
    } catch {
      throw invalidArgType('params', 'JSON-serialisable', params);
    }
  }

  /** End the connection; pending calls fail with ERR_VMLINK_RPC_CLOSED. */
  close(): Promise<void> {
    if (!this.connection.destroyed) {
      const closed = new Promise<void>((resolve) => this.connection.once('close', () => resolve()));
      this.shutdown(undefined);
      this.connection.end();
      // A peer that never answers our FIN must not keep us waiting forever.
      const timer = setTimeout(() => this.connection.destroy(), 5000);
      timer.unref();
      return closed.finally(() => clearTimeout(timer));
    }
    this.shutdown(undefined);
    return Promise.resolve();
  }

  /** Close at once, destroying the connection. */
  destroy(error?: Error): void {
    this.shutdown(error);
    this.connection.destroy();
  }

  private startPump(body: BodySource, stream: number, gate: CreditGate, onFailure?: (error: Error) => void): void {
    const done = (): void => void this.outbound.delete(stream);
    pumpBody(body, stream, this.writer, gate, this.chunkSize).then(done, (error: Error) => {
      done();
      onFailure?.(error);
    });
  }

  private stopOutbound(stream: number, error: Error): void {
    const out = this.outbound.get(stream);
    if (!out) return;
    this.outbound.delete(stream);
    out.gate.fail(error);
  }

  private openInbound(stream: number): InboundBody {
    const body = new InboundBody(
      this.streamWindow,
      (bytes) => this.writer.write({ type: 'CREDIT', stream, bytes }),
      () => {
        if (this.inbound.delete(stream)) this.writer.write({ type: 'STOP', stream });
      },
      // The consumer took bytes: with a budget, that may let us read again.
      this.budget ? () => this.refreshBudget() : undefined,
    );
    this.inbound.set(stream, body);
    if (this.budget) body.once('close', () => this.refreshBudget());
    return body;
  }

  private onMalformed(error: RpcError, id: number | null): void {
    if (this.isClosed) return;
    this.badFrames += 1;
    if (this.badFrames > this.maxBadFrames) {
      // Condemned: decode nothing more from it and report it once, not once per frame.
      this.terminate(
        new RpcError(RpcErrorCode.BAD_FRAMES, `more than ${this.maxBadFrames} malformed frames on this connection (the last: ${error.message}); closed`, {
          data: { badFrames: this.badFrames },
        }),
      );
      return;
    }
    // Answer so the other side learns why (and a request with a readable id fails
    // instead of hanging), then carry on with the next frame.
    this.writer.write({ type: 'ERROR', id, error: { code: error.code, message: error.message } });
    this.checkBacklog();
    this.warn(error);
  }

  private dispatch(frame: Frame): void {
    switch (frame.type) {
      case 'REQUEST': {
        // Open the body now, so its chunks are kept (within its window) while we wait.
        const body = frame.stream === undefined ? undefined : this.openInbound(frame.stream);
        if (this.active >= this.maxConcurrent) {
          const bytes = this.decoder.lastFrameLength;
          this.waiting.push({ frame, body, bytes });
          this.waitingBytes += bytes;
        }
        else this.onRequest(frame, body);
        return;
      }
      case 'RESPONSE': {
        const call = this.calls.get(frame.id);
        const body = frame.stream === undefined ? undefined : this.openInbound(frame.stream);
        if (call) this.answered(call, { result: frame.result, body });
        else body?.destroy(); // a response to a call we gave up on: stop its body
        return;
      }
      case 'ERROR': {
        const call = frame.id === null ? undefined : this.calls.get(frame.id);
        if (call) this.failed(call, fromWire(frame.error));
        else this.warn(fromWire(frame.error)); // about no call of ours (or one we gave up)
        return;
      }
      case 'NOTIFY':
        return this.onNotify(frame.method, frame.params);
      case 'CHUNK':
        this.inbound.get(frame.stream)?.onChunk(frame.payload);
        return;
      case 'END': {
        const body = this.inbound.get(frame.stream);
        this.inbound.delete(frame.stream);
        body?.onEnd(frame.error ? fromWire(frame.error) : undefined);
        return;
      }
      case 'CREDIT':
        this.outbound.get(frame.stream)?.gate.add(frame.bytes);
        return;
      case 'CANCEL':
        this.incoming.get(frame.id)?.cancel(new RpcError(RpcErrorCode.CANCELLED, 'the caller cancelled the request'));
        return;
      case 'STOP':
        this.stopOutbound(frame.stream, new RpcError(RpcErrorCode.STREAM_ABORTED, 'the receiver stopped reading the body'));
        return;
    }
  }

  private onRequest(frame: RequestFrame, body: InboundBody | undefined): void {
    const handler = this.handlers.get(frame.method);
    if (!handler) {
      body?.destroy();
      this.writer.write({
        type: 'ERROR',
        id: frame.id,
        error: { code: RpcErrorCode.UNKNOWN_METHOD, message: `unknown method '${frame.method}'` },
      });
      this.checkBacklog();
      return;
    }
    const call = new IncomingCall(frame.id, frame.method, body, this);
    this.active += 1;
    if (this.active >= this.maxConcurrent) this.setPaused(PAUSE_CONCURRENCY, true);
    let value: unknown;
    try {
      value = handler(frame.params, call);
    } catch (error) {
      this.replyError(call, error);
      this.finishRequest(call, false);
      return;
    }
    if (value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function') {
      // Only a call that outlives this tick can be cancelled: a CANCEL frame is read
      // after the handler has returned, so a synchronous one never needs the map.
      this.incoming.set(call.id, call);
      Promise.resolve(value as PromiseLike<unknown>).then(
        (result) => this.finishRequest(call, this.reply(call, result)),
        (error: unknown) => {
          this.replyError(call, error);
          this.finishRequest(call, false);
        },
      );
    } else {
      // A synchronous handler is answered in the same tick: no promise hops on the hot path.
      this.finishRequest(call, this.reply(call, value));
    }
  }

  /** `keptBody`: the handler reads on after returning (withBody's keepRequestBody), so its body is not released. */
  private finishRequest(call: IncomingCall, keptBody: boolean): void {
    this.incoming.delete(call.id);
    this.active -= 1;
    if (this.idleTimeout > 0) this.lastActive = performance.now();
    // Requests read before a write backlog stopped us wait until it drains (their replies
    // would add to it). Under the budget they go on: starting them is what releases them.
    const next = this.isClosed || this.waiting.length === 0 || (this.pausedBy & PAUSE_WRITE) !== 0 ? undefined : this.takeWaiting();
    if (next) this.onRequest(next.frame, next.body);
    else if (this.active < this.maxConcurrent) this.setPaused(PAUSE_CONCURRENCY, false);
    if (this.budget) this.refreshBudget();
    const body = call.body;
    if (body && !keptBody && !body.readableEnded) body.destroy(); // the handler is done; stop what it did not read
  }

  /** Answer `call`; true when the answer went out and hands the request body on to the response (keepRequestBody). */
  private reply(call: IncomingCall, value: unknown): boolean {
    if (call.cancelled || !this.writer.open) return false; // the caller is gone
    const id = call.id;
    const withStream = value instanceof BodyResult ? value : undefined;
    const result = withStream ? withStream.result : value;
    const stream = withStream ? this.takeStreamId() : undefined;
    let gate: CreditGate | undefined;
    if (stream !== undefined) {
      gate = new CreditGate();
      this.outbound.set(stream, { gate });
    }
    try {
      this.writer.write({ type: 'RESPONSE', id, result, stream });
    } catch {
      if (stream !== undefined) this.outbound.delete(stream);
      this.replyError(call, new RpcError(RpcErrorCode.HANDLER_FAILED, 'the handler result is not JSON-serialisable'));
      return false;
    }
    this.checkBacklog();
    if (!withStream || stream === undefined || !gate) return false;
    const kept = withStream.keepRequestBody && call.body !== undefined && !call.body.destroyed ? call.body : undefined;
    // A failed response body ends the whole exchange: its request body is released too.
    this.startPump(withStream.body, stream, gate, kept && ((error) => kept.destroy(error)));
    return kept !== undefined;
  }

  private replyError(call: IncomingCall, error: unknown): void {
    if (call.cancelled || !this.writer.open) return;
    const id = call.id;
    const wire = toWireError(error);
    try {
      this.writer.write({ type: 'ERROR', id, error: wire });
    } catch {
      this.writer.write({ type: 'ERROR', id, error: { code: wire.code, message: wire.message } }); // data was not JSON-able
    }
    this.checkBacklog();
  }

  private onNotify(method: string, params: unknown): void {
    const handler = this.handlers.get(method);
    if (!handler) {
      this.warn(new RpcError(RpcErrorCode.UNKNOWN_METHOD, `notification for unknown method '${method}'`));
      return;
    }
    const context: HandlerContext = { method, signal: new AbortController().signal, body: undefined, peer: this };
    Promise.resolve()
      .then(() => handler(params, context))
      .catch((error: unknown) => {
        const wire = toWireError(error);
        this.warn(new RpcError(wire.code, `notification '${method}' failed: ${wire.message}`, { cause: error }));
      });
  }

  private onData(chunk: Buffer): void {
    if (this.isClosed) return;
    const ended = this.decoder.framesEnded;
    this.decoder.feed(chunk, this.sink);
    if (this.idleTimeout > 0 && this.decoder.framesEnded !== ended) this.lastActive = performance.now();
    if (this.frameTimeout > 0) this.watchFrame();
    if (this.budget) this.refreshBudget();
  }

  private onDrain(): void {
    if (this.isClosed) return;
    if (this.budget) this.refreshBudget();
    this.setPaused(PAUSE_WRITE, false);
  }

  /** Start or stop reading for one reason; the connection is read only when no reason holds. */
  private setPaused(reason: number, on: boolean): void {
    const before = this.pausedBy;
    this.pausedBy = on ? before | reason : before & ~reason;
    if (this.pausedBy !== before) this.applyReading();
  }

  private applyReading(): void {
    if (this.isClosed) return;
    if (this.pausedBy !== 0) {
      // Concurrency only stops new reads (frames already read still run through the
      // waiting queue); backlog and budget stop decoding at once, mid-chunk.
      if ((this.pausedBy & (PAUSE_WRITE | PAUSE_BUDGET)) !== 0) this.decoder.pause();
      this.connection.pause();
      if (this.frameTimer) this.stopFrameTimer(); // not the sender's fault while we do not read
      return;
    }
    this.startWaiting();
    if (this.pausedBy !== 0 || this.isClosed) return; // the waiting requests filled the concurrency again
    if (this.decoder.isPaused) {
      const ended = this.decoder.framesEnded;
      this.decoder.resume(this.sink); // what was held back (may pause again)
      if (this.idleTimeout > 0 && this.decoder.framesEnded !== ended) this.lastActive = performance.now();
    }
    if (this.pausedBy !== 0 || this.isClosed) return;
    this.connection.resume();
    if (this.frameTimeout > 0) this.watchFrame();
  }

  /** Requests read earlier and held back: start as many as concurrency allows while reading is allowed. */
  private startWaiting(): void {
    while (this.waiting.length > 0 && this.active < this.maxConcurrent && (this.pausedBy & PAUSE_WRITE) === 0 && !this.isClosed) {
      const next = this.takeWaiting();
      this.onRequest(next.frame, next.body);
    }
  }

  private takeWaiting(): WaitingRequest {
    const next = this.waiting.shift() as WaitingRequest;
    this.waitingBytes -= next.bytes;
    return next;
  }

  /** After writing a reply: stop reading while the remote leaves more than maxWriteBuffer unread. */
  private checkBacklog(): void {
    const queued = this.writer.queuedBytes;
    if (queued > this.peakWrite) this.peakWrite = queued;
    if (queued > this.maxWriteBuffer && (this.pausedBy & PAUSE_WRITE) === 0) {
      this.limitOnce(RpcErrorCode.WRITE_BACKLOG, `the remote left more than ${this.maxWriteBuffer} bytes of replies unread; reading paused until they drain`);
      // 'drain' follows: maxWriteBuffer >= writableHighWaterMark, so this write returned false.
      this.setPaused(PAUSE_WRITE, true);
    }
    if (this.budget) this.refreshBudget();
  }

  /** Charge the budget what we hold now, and read or not accordingly. */
  private refreshBudget(): void {
    const budget = this.budget;
    if (!budget || this.isClosed) return;
    const releasable = this.writer.queuedBytes + this.bodyBytes() + this.waitingBytes;
    const over = budget.charge(this, releasable, this.decoder.bufferedBytes + this.decoder.heldBytes);
    if (over && (this.pausedBy & PAUSE_BUDGET) === 0) {
      this.limitOnce(RpcErrorCode.MEMORY_BUDGET, `this connection holds ${releasable} bytes, over its share (${budget.fairShare} of ${budget.limit} bytes, ${budget.used} used); reading paused`);
    }
    this.setPaused(PAUSE_BUDGET, over);
  }

  /** @internal Called by a shared RpcMemoryBudget when bytes were released elsewhere. */
  budgetChanged(): void {
    this.refreshBudget();
  }

  private busy(): boolean {
    return this.active > 0 || this.calls.size > 0 || this.inbound.size > 0 || this.outbound.size > 0 || this.waiting.length > 0 || (this.pausedBy & PAUSE_BUDGET) !== 0;
  }

  private checkIdle(): void {
    if (this.isClosed) return;
    const now = performance.now();
    if (this.busy()) this.lastActive = now;
    const quiet = now - this.lastActive;
    if (quiet >= this.idleTimeout) {
      this.terminate(new RpcError(RpcErrorCode.IDLE_TIMEOUT, `no frame received and nothing in flight for ${Math.round(quiet)} ms (idleTimeout ${this.idleTimeout} ms); closed`));
      return;
    }
    this.idleTimer = setTimeout(() => this.checkIdle(), this.idleTimeout - quiet);
    this.idleTimer.unref();
  }

  /** Keep one timer on the frame in progress: armed at its first byte, kept while it lasts. */
  private watchFrame(): void {
    if (this.pausedBy !== 0 || !this.decoder.inFrame) {
      if (this.frameTimer) this.stopFrameTimer();
      return;
    }
    const mark = this.decoder.framesEnded;
    if (this.frameTimer && mark === this.frameMark) return; // the same frame: its clock runs on
    this.frameMark = mark;
    this.frameStarted = performance.now();
    if (this.frameTimer) {
      this.frameTimer.refresh(); // a new frame: one timer object per peer, re-armed
      return;
    }
    this.frameTimer = setTimeout(() => {
      this.frameTimer = undefined;
      const waited = Math.round(performance.now() - this.frameStarted);
      this.terminate(
        new RpcError(RpcErrorCode.FRAME_TIMEOUT, `a frame was not complete ${waited} ms after its first byte (frameTimeout ${this.frameTimeout} ms, ${this.decoder.bufferedBytes} bytes of it received); closed`),
      );
    }, this.frameTimeout);
    this.frameTimer.unref();
  }

  private stopFrameTimer(): void {
    clearTimeout(this.frameTimer);
    this.frameTimer = undefined;
  }

  /** Emit 'limit' for `code` the first time it bites on this peer. */
  private limitOnce(code: string, message: string): void {
    this.emitLimit(new RpcError(code, message));
  }

  private emitLimit(error: RpcError): void {
    if (this.limitsHit.has(error.code)) return;
    this.limitsHit.add(error.code);
    this.emit('limit', error);
  }

  /**
   * A limit closes the connection: stop decoding at once, report it once ('limit', then
   * 'close' with the same error), tell the remote why, and let that last frame leave.
   */
  private terminate(error: RpcError): void {
    if (this.isClosed) return;
    this.decoder.stop();
    this.flushWarnings();
    this.emitLimit(error);
    if (this.writer.open) this.writer.write({ type: 'ERROR', id: null, error: { code: error.code, message: error.message } });
    const connection = this.connection;
    const timer = setTimeout(() => connection.destroy(), 1000); // a remote that reads nothing more
    timer.unref();
    connection.once('close', () => clearTimeout(timer));
    connection.once('finish', () => connection.destroy());
    this.shutdown(error);
  }

  /** Emit a warning, at most WARNING_BURST per code per window; the rest are counted into one summary. */
  private warn(error: RpcError): void {
    if (this.isClosed) return;
    const now = performance.now();
    const windows = (this.warnings ??= new Map());
    let window = windows.get(error.code);
    if (!window || now >= window.ends) {
      if (window) this.flushWindow(error.code, window);
      window = { ends: now + WARNING_WINDOW_MS, emitted: 0, suppressed: 0, last: undefined };
      windows.set(error.code, window);
    }
    if (window.emitted < WARNING_BURST) {
      window.emitted += 1;
      this.emit('warning', error);
      return;
    }
    window.suppressed += 1;
    window.last = error;
    this.armWarningTimer(window.ends - now);
  }

  private armWarningTimer(ms: number): void {
    if (this.warningTimer) return;
    this.warningTimer = setTimeout(() => {
      this.warningTimer = undefined;
      this.flushEndedWindows();
    }, Math.max(1, Math.ceil(ms)));
    this.warningTimer.unref();
  }

  /** Summaries of the windows that are over; a window still running keeps counting. */
  private flushEndedWindows(): void {
    if (!this.warnings || this.isClosed) return;
    const now = performance.now();
    let next = Infinity;
    for (const [code, window] of this.warnings) {
      if (now >= window.ends) {
        this.flushWindow(code, window);
        this.warnings.delete(code);
      } else if (window.suppressed > 0) next = Math.min(next, window.ends - now);
    }
    if (next !== Infinity) this.armWarningTimer(next);
  }

  /** Every pending summary, now (the connection is closing). */
  private flushWarnings(): void {
    if (!this.warnings || this.isClosed) return;
    for (const [code, window] of this.warnings) this.flushWindow(code, window);
    this.warnings.clear();
  }

  private flushWindow(code: string, window: WarningWindow): void {
    if (window.suppressed === 0 || !window.last) return;
    const { suppressed, last } = window;
    window.suppressed = 0;
    this.emit(
      'warning',
      new RpcError(code, `${suppressed} more warnings with this code within ${WARNING_WINDOW_MS} ms; the last: ${last.message}`, {
        data: { suppressed },
        remote: last.remote,
      }),
    );
  }

  private shutdown(error: Error | undefined): void {
    if (this.isClosed) return;
    this.flushWarnings();
    this.isClosed = true;
    this.closeError = error;
    this.decoder.stop();
    clearTimeout(this.idleTimer);
    clearTimeout(this.frameTimer);
    clearTimeout(this.warningTimer);
    this.budget?.leave(this);
    const closed = closedError(error);
    for (const call of [...this.calls.values()]) this.failed(call, closed);
    for (const call of this.incoming.values()) call.cancel(closed);
    for (const body of this.inbound.values()) body.destroy(closed);
    this.inbound.clear();
    this.waiting.length = 0;
    this.waitingBytes = 0;
    for (const stream of [...this.outbound.keys()]) this.stopOutbound(stream, closed);
    if (!this.connection.destroyed && !this.connection.writableEnded) this.connection.end();
    this.emit('close', error);
  }
}
