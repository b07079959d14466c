import { VmlinkError } from '@vmlink/errors';

/** Error codes of @vmlink/rpc itself (handlers may use any `code` of their own). */
export const RpcErrorCode = {
  /** The declared frame length exceeds `maxFrameSize`; the frame was skipped unread. */
  FRAME_TOO_LARGE: 'ERR_VMLINK_RPC_FRAME_TOO_LARGE',
  /** A frame could not be decoded (bad type, header, JSON, field); it was skipped. */
  MALFORMED_FRAME: 'ERR_VMLINK_RPC_MALFORMED_FRAME',
  /** No handler is registered under the requested method name. */
  UNKNOWN_METHOD: 'ERR_VMLINK_RPC_UNKNOWN_METHOD',
  /** A handler failed with an error that had no string `code`. */
  HANDLER_FAILED: 'ERR_VMLINK_RPC_HANDLER_FAILED',
  /** The call's `timeout` expired (the peer was told to cancel). */
  TIMEOUT: 'ERR_VMLINK_RPC_TIMEOUT',
  /** The peer closed, or the connection ended, before the call finished. */
  CLOSED: 'ERR_VMLINK_RPC_CLOSED',
  /** A streamed body was stopped by the other side or failed. */
  STREAM_ABORTED: 'ERR_VMLINK_RPC_STREAM_ABORTED',
  /** The request was cancelled by the caller (seen by handlers through ctx.signal). */
  CANCELLED: 'ERR_VMLINK_RPC_CANCELLED',
  /** Limit: no complete frame and nothing in flight for `idleTimeout` ms; the connection was closed. */
  IDLE_TIMEOUT: 'ERR_VMLINK_IDLE_TIMEOUT',
  /** Limit: a frame did not complete within `frameTimeout` ms of its first byte (slowloris); closed. */
  FRAME_TIMEOUT: 'ERR_VMLINK_FRAME_TIMEOUT',
  /** Limit: more than `maxBadFrames` malformed frames; the connection was condemned and closed. */
  BAD_FRAMES: 'ERR_VMLINK_BAD_FRAMES',
  /** Limit: output queued for the remote passed `maxWriteBuffer`; reading paused until it drains. */
  WRITE_BACKLOG: 'ERR_VMLINK_WRITE_BACKLOG',
  /** Limit: the peer's share of the shared memory `budget` was spent; reading paused until released. */
  MEMORY_BUDGET: 'ERR_VMLINK_MEMORY_BUDGET',
} as const;

export interface RpcErrorOptions {
  /** JSON data the error carries across the wire. */
  readonly data?: unknown;
  /** True when the error was produced by the other peer. */
  readonly remote?: boolean;
  readonly cause?: unknown;
}

/** An error with a `code` and `message` that crosses the wire as is. */
export class RpcError extends VmlinkError {
  readonly data: unknown;
  readonly remote: boolean;

  constructor(code: string, message: string, options: RpcErrorOptions = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.data = options.data;
    this.remote = options.remote ?? false;
  }
}

/** The `code` and `message` of any thrown value, as they go on the wire. */
export function toWireError(error: unknown): { code: string; message: string; data?: unknown } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const data = error instanceof RpcError ? error.data : undefined;
    return {
      code: typeof code === 'string' && code.length > 0 ? code : RpcErrorCode.HANDLER_FAILED,
      message: error.message,
      ...(data === undefined ? {} : { data }),
    };
  }
  return { code: RpcErrorCode.HANDLER_FAILED, message: String(error) };
}
