import { EventEmitter } from 'node:events';
import type { Duplex, Readable } from 'node:stream';
import { abortError, invalidArgType, validateAbortSignal, validateFunction, validateInteger, validateObject } from '@vmlink/errors';
import { CreditGate, InboundBody, pumpBody, type BodySource } from './body.js';
import { FrameDecoder, type FrameSink } from './decoder.js';
import { RpcError, RpcErrorCode, toWireError } from './errors.js';
import { DEFAULT_MAX_FRAME_SIZE, MAX_ID, MIN_FRAME_LENGTH, type Frame, type WireError } from './frame.js';
import { FrameWriter, closedError } from './writer.js';

export interface HandlerContext {
  readonly method: string;
  /** Aborted when the caller cancels (abort, timeout) or the connection closes. */
  readonly signal: AbortSignal;
  /** The request's streamed body, if the caller sent one. Read it or destroy it. */
  readonly body: Readable | undefined;
  readonly peer: RpcPeer;
}

/** A method handler: gets `params`, returns a JSON-able result (or `withBody(...)`). */
export type Handler = (params: unknown, context: HandlerContext) => unknown;

/** A handler result with a streamed body: `return withBody({ size }, fs.createReadStream(p))`. */
export class BodyResult {
  constructor(
    readonly result: unknown,
    readonly body: BodySource,
  ) {}
}

export function withBody(result: unknown, body: BodySource): BodyResult {
  return new BodyResult(result, body);
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
export class RpcPeer extends EventEmitter<RpcPeerEventMap> {
  readonly maxFrameSize: number;
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
  /** Requests read while maxConcurrentRequests were running (the connection is paused). */
  private readonly waiting: Array<[Extract<Frame, { type: 'REQUEST' }>, InboundBody | undefined]> = [];
  private nextId = 1;
  private nextStream = 1;
  private active = 0;
  private closeError: Error | undefined;
  private isClosed = false;

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
    this.decoder = new FrameDecoder(this.maxFrameSize);
    this.writer = new FrameWriter(connection);

    const sink: FrameSink = {
      frame: (frame) => this.dispatch(frame),
      malformed: (error, id) => this.onMalformed(error, id),
    };
    connection.on('data', (chunk: Buffer) => this.decoder.feed(chunk, sink));
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

  private startPump(body: BodySource, stream: number, gate: CreditGate): void {
    const done = (): void => void this.outbound.delete(stream);
    pumpBody(body, stream, this.writer, gate, this.chunkSize).then(done, done);
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
    );
    this.inbound.set(stream, body);
    return body;
  }

  private onMalformed(error: RpcError, id: number | null): void {
    // Answer so the other side learns why (and a request with a readable id fails
    // instead of hanging), then carry on with the next frame.
    this.writer.write({ type: 'ERROR', id, error: { code: error.code, message: error.message } });
    this.emit('warning', error);
  }

  private dispatch(frame: Frame): void {
    switch (frame.type) {
      case 'REQUEST': {
        // Open the body now, so its chunks are kept (within its window) while we wait.
        const body = frame.stream === undefined ? undefined : this.openInbound(frame.stream);
        if (this.active >= this.maxConcurrent) this.waiting.push([frame, body]);
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
        else this.emit('warning', fromWire(frame.error)); // about no call of ours (or one we gave up)
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

  private onRequest(frame: Extract<Frame, { type: 'REQUEST' }>, body: InboundBody | undefined): void {
    const handler = this.handlers.get(frame.method);
    if (!handler) {
      body?.destroy();
      this.writer.write({
        type: 'ERROR',
        id: frame.id,
        error: { code: RpcErrorCode.UNKNOWN_METHOD, message: `unknown method '${frame.method}'` },
      });
      return;
    }
    const call = new IncomingCall(frame.id, frame.method, body, this);
    this.active += 1;
    if (this.active >= this.maxConcurrent) this.connection.pause();
    let value: unknown;
    try {
      value = handler(frame.params, call);
    } catch (error) {
      this.replyError(call, error);
      this.finishRequest(call);
      return;
    }
    if (value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function') {
      // Only a call that outlives this tick can be cancelled: a CANCEL frame is read
      // after the handler has returned, so a synchronous one never needs the map.
      this.incoming.set(call.id, call);
      Promise.resolve(value as PromiseLike<unknown>).then(
        (result) => {
          this.reply(call, result);
          this.finishRequest(call);
        },
        (error: unknown) => {
          this.replyError(call, error);
          this.finishRequest(call);
        },
      );
    } else {
      // A synchronous handler is answered in the same tick: no promise hops on the hot path.
      this.reply(call, value);
      this.finishRequest(call);
    }
  }

  private finishRequest(call: IncomingCall): void {
    this.incoming.delete(call.id);
    this.active -= 1;
    const next = this.isClosed || this.waiting.length === 0 ? undefined : this.waiting.shift();
    if (next) this.onRequest(...next);
    else if (this.active < this.maxConcurrent && !this.isClosed && !this.connection.readableFlowing) this.connection.resume();
    const body = call.body;
    if (body && !body.readableEnded) body.destroy(); // the handler is done; stop what it did not read
  }

  private reply(call: IncomingCall, value: unknown): void {
    if (call.cancelled || !this.writer.open) return; // the caller is gone
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
      return;
    }
    if (withStream && stream !== undefined && gate) this.startPump(withStream.body, stream, gate);
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
  }

  private onNotify(method: string, params: unknown): void {
    const handler = this.handlers.get(method);
    if (!handler) {
      this.emit('warning', new RpcError(RpcErrorCode.UNKNOWN_METHOD, `notification for unknown method '${method}'`));
      return;
    }
    const context: HandlerContext = { method, signal: new AbortController().signal, body: undefined, peer: this };
    Promise.resolve()
      .then(() => handler(params, context))
      .catch((error: unknown) => {
        const wire = toWireError(error);
        this.emit('warning', new RpcError(wire.code, `notification '${method}' failed: ${wire.message}`, { cause: error }));
      });
  }

  private shutdown(error: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeError = error;
    const closed = closedError(error);
    for (const call of [...this.calls.values()]) this.failed(call, closed);
    for (const call of this.incoming.values()) call.cancel(closed);
    for (const body of this.inbound.values()) body.destroy(closed);
    this.inbound.clear();
    this.waiting.length = 0;
    for (const stream of [...this.outbound.keys()]) this.stopOutbound(stream, closed);
    if (!this.connection.destroyed && !this.connection.writableEnded) this.connection.end();
    this.emit('close', error);
  }
}
