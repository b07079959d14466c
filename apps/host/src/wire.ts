/**
 * STOPGAP until @vmlink/rpc lands: a minimal framing with credit-based body flow control,
 * so the agent and CLI can be built and tested end to end now. The same file is copied in
 * apps/host/src/wire.ts. Both copies go away when rpc-binding.ts / rpc-client.ts switch
 * to @vmlink/rpc; nothing outside those two files depends on this format.
 *
 * Frame: u32 BE length of what follows | u8 type | u32 BE call id | payload.
 */
import { VmlinkError } from '@vmlink/errors';

export const FrameType = { REQUEST: 1, RESPONSE: 2, DATA: 3, END: 4, CREDIT: 5, CANCEL: 6 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Largest DATA chunk a sender may put in one frame. */
export const MAX_CHUNK = 1024 * 1024;
/** Largest frame accepted: checked on the length prefix, before any allocation. */
export const MAX_FRAME = MAX_CHUNK + 64 * 1024;
/** Chunks a sender may have in flight per body before it needs CREDIT. */
export const WINDOW = 8;

export interface Frame {
  readonly type: FrameType;
  readonly id: number;
  readonly payload: Buffer;
}

export function encodeFrame(type: FrameType, id: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const header = Buffer.allocUnsafe(9);
  header.writeUInt32BE(5 + payload.length, 0);
  header.writeUInt8(type, 4);
  header.writeUInt32BE(id, 5);
  return Buffer.concat([header, payload]);
}

export function encodeJson(type: FrameType, id: number, value: unknown): Buffer {
  return encodeFrame(type, id, Buffer.from(JSON.stringify(value), 'utf8'));
}

export function protocolError(message: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_PROTOCOL', message);
}

/** Incremental decoder: feed it chunks, get whole frames; throws on a bad length or type. */
export class FrameDecoder {
  private buffered: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): Frame[] {
    this.buffered.push(chunk);
    this.size += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.size < 4) break;
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length < 5 || length > MAX_FRAME) throw protocolError(`bad frame length ${length} (allowed 5..${MAX_FRAME})`);
      if (this.size < 4 + length) break;
      const whole = this.take(4 + length);
      const type = whole.readUInt8(4);
      if (type < FrameType.REQUEST || type > FrameType.CANCEL) throw protocolError(`unknown frame type ${type}`);
      frames.push({ type: type as FrameType, id: whole.readUInt32BE(5), payload: whole.subarray(9) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    const first = this.buffered[0] as Buffer;
    if (first.length >= n) return first;
    const merged = Buffer.concat(this.buffered);
    this.buffered = [merged];
    return merged;
  }

  private take(n: number): Buffer {
    const merged = this.peek(n);
    const out = merged.subarray(0, n);
    const rest = merged.subarray(n);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.size -= n;
    return out;
  }
}

/** Credits a body sender may use; `take()` waits while none are left. */
export class CreditGate {
  private credit = WINDOW;
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  grant(n: number): void {
    this.credit += n;
    const wake = this.waiter;
    this.waiter = undefined;
    wake?.();
  }

  fail(error: Error): void {
    this.failure ??= error;
    const wake = this.waiter;
    this.waiter = undefined;
    wake?.();
  }

  async take(): Promise<void> {
    while (this.credit <= 0) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    if (this.failure) throw this.failure;
    this.credit -= 1;
  }
}

/** A body being received: a bounded queue (at most WINDOW chunks, by construction). */
export class BodyQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;

  constructor(private readonly onConsumed: () => void) {}

  push(chunk: Buffer): void {
    if (this.chunks.length >= WINDOW) {
      this.fail(protocolError('peer sent body data beyond its credit'));
      return;
    }
    this.chunks.push(chunk);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  get finished(): boolean {
    return this.ended || this.failure !== undefined;
  }

  private wake(): void {
    const wake = this.waiter;
    this.waiter = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.failure) throw this.failure;
      const chunk = this.chunks.shift();
      if (chunk) {
        yield chunk;
        this.onConsumed();
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }
}

export function creditPayload(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}
