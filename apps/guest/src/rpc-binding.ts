import { VmlinkError } from '@vmlink/errors';
import type { Connection } from '@vmlink/transport';
import {
  BodyQueue,
  CreditGate,
  FrameDecoder,
  FrameType,
  MAX_CHUNK,
  WINDOW,
  creditPayload,
  encodeFrame,
  encodeJson,
  protocolError,
  type Frame,
} from './wire.js';

/** One call as the agent sees it, whatever carries it. */
export interface CallIo {
  readonly signal: AbortSignal;
  readonly body: AsyncIterable<Uint8Array> | undefined;
  readonly sendChunk: (chunk: Uint8Array) => Promise<void>;
}

export type Dispatch = (method: string, params: unknown, io: CallIo) => Promise<unknown>;

export interface BindOptions {
  readonly maxParamsBytes: number;
  readonly onProtocolError: (error: Error) => void;
}

interface ServerCall {
  readonly abort: AbortController;
  readonly body: BodyQueue | undefined;
  readonly credit: CreditGate;
}

/**
 * Serves `dispatch` on one Connection. A malformed frame gets an error reply where it can
 * be attributed to a call, and otherwise closes only this connection: never the agent.
 */
export function bindConnection(connection: Connection, dispatch: Dispatch, options: BindOptions): { close(): void } {
  const decoder = new FrameDecoder();
  const calls = new Map<number, ServerCall>();
  let closed = false;

  // One shared wait for 'drain' (many calls may be blocked on the same full socket),
  // settled by 'close' too, so no sender waits forever on a dead connection.
  let drained: Promise<void> | undefined;
  const waitDrain = (): Promise<void> => {
    drained ??= new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        connection.off('close', onClose);
        drained = undefined;
        resolve();
      };
      const onClose = (): void => {
        connection.off('drain', onDrain);
        drained = undefined;
        reject(new VmlinkError('ERR_VMLINK_CONNECTION_LOST', 'the client went away'));
      };
      connection.once('drain', onDrain);
      connection.once('close', onClose);
    });
    return drained;
  };
  const write = async (frame: Buffer): Promise<void> => {
    if (closed || connection.destroyed) throw new VmlinkError('ERR_VMLINK_CONNECTION_LOST', 'the client went away');
    if (!connection.write(frame)) await waitDrain();
  };

  const reply = (id: number, outcome: { ok: unknown } | { err: { code: string; message: string } }): void => {
    write(encodeJson(FrameType.RESPONSE, id, outcome)).catch(() => undefined);
  };

  const startCall = (frame: Frame): void => {
    if (calls.has(frame.id)) throw protocolError(`call id ${frame.id} is already in use`);
    if (frame.payload.length > options.maxParamsBytes) {
      reply(frame.id, { err: { code: 'ERR_VMLINK_REQUEST_TOO_LARGE', message: `request of ${frame.payload.length} bytes exceeds ${options.maxParamsBytes}` } });
      return;
    }
    let request: { method?: unknown; params?: unknown; body?: unknown };
    try {
      request = JSON.parse(frame.payload.toString('utf8')) as typeof request;
    } catch {
      reply(frame.id, { err: { code: 'ERR_VMLINK_PROTOCOL', message: 'request is not valid JSON' } });
      return;
    }
    if (typeof request?.method !== 'string') {
      reply(frame.id, { err: { code: 'ERR_VMLINK_PROTOCOL', message: 'request has no method name' } });
      return;
    }
    const id = frame.id;
    const credit = new CreditGate();
    const body = request.body === true ? new BodyQueue(() => write(encodeFrame(FrameType.CREDIT, id, creditPayload(1))).catch(() => undefined)) : undefined;
    const call: ServerCall = { abort: new AbortController(), body, credit };
    calls.set(id, call);
    const sendChunk = async (chunk: Uint8Array): Promise<void> => {
      for (let offset = 0; offset < chunk.length; offset += MAX_CHUNK) {
        await credit.take();
        call.abort.signal.throwIfAborted();
        await write(encodeFrame(FrameType.DATA, id, chunk.subarray(offset, offset + MAX_CHUNK)));
      }
    };
    dispatch(request.method, request.params ?? {}, { signal: call.abort.signal, body, sendChunk }).then(
      (result) => reply(id, { ok: result ?? null }),
      (error: unknown) => {
        const code = (error as { code?: unknown }).code;
        reply(id, { err: { code: typeof code === 'string' ? code : 'ERR_VMLINK_AGENT', message: (error as Error).message ?? String(error) } });
      },
    ).finally(() => {
      calls.delete(id);
      credit.fail(new VmlinkError('ERR_VMLINK_CALL_DONE', 'call finished'));
      endIfIdle();
    });
  };

  const onFrame = (frame: Frame): void => {
    if (frame.type === FrameType.REQUEST) return startCall(frame);
    const call = calls.get(frame.id);
    if (!call) return; // late frames of a finished or cancelled call: harmless
    switch (frame.type) {
      case FrameType.DATA:
        if (!call.body || call.body.finished) throw protocolError(`call ${frame.id} has no open request body`);
        call.body.push(frame.payload);
        return;
      case FrameType.END:
        call.body?.end();
        return;
      case FrameType.CREDIT:
        call.credit.grant(Math.min(frame.payload.length >= 4 ? frame.payload.readUInt32BE(0) : 0, WINDOW));
        return;
      case FrameType.CANCEL:
        call.abort.abort(new VmlinkError('ERR_VMLINK_CANCELLED', 'the client cancelled the call'));
        call.body?.fail(new VmlinkError('ERR_VMLINK_CANCELLED', 'the client cancelled the call'));
        return;
      default:
        throw protocolError(`unexpected frame type ${frame.type} from a client`);
    }
  };

  const shutdown = (error: Error): void => {
    if (closed) return;
    closed = true;
    for (const call of calls.values()) {
      call.abort.abort(error);
      call.body?.fail(error);
      call.credit.fail(error);
    }
  };

  connection.on('data', (chunk: Buffer) => {
    try {
      for (const frame of decoder.push(chunk)) onFrame(frame);
    } catch (error) {
      options.onProtocolError(error as Error);
      shutdown(error as Error);
      connection.destroy();
    }
  });
  // The client ended its side (a CLI that is done): answer what is in flight, then end ours.
  let clientEnded = false;
  const endIfIdle = (): void => {
    if (clientEnded && calls.size === 0 && !connection.destroyed) connection.end();
  };
  connection.on('end', () => {
    clientEnded = true;
    endIfIdle();
  });
  connection.on('error', () => undefined); // 'close' follows; the cause is the client's problem
  connection.on('close', () => shutdown(new VmlinkError('ERR_VMLINK_CONNECTION_LOST', 'the client went away')));
  return { close: () => shutdown(new VmlinkError('ERR_VMLINK_CONNECTION_LOST', 'connection closed')) };
}
