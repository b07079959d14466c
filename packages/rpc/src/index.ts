/**
 * @vmlink/rpc: length-prefixed frames, request/response with ids, notifications, and
 * credit-flow-controlled streamed bodies over any Duplex (a @vmlink/transport Connection).
 */
export { RpcPeer, withBody, BodyResult, type WithBodyOptions, type Handler, type HandlerContext, type CallOptions, type RpcResponse, type RpcPeerOptions, type RpcPeerEventMap, type RpcPeerMemory } from './peer.js';
export { RpcMemoryBudget, createMemoryBudget, type BudgetMember } from './budget.js';
export { RpcError, RpcErrorCode, type RpcErrorOptions } from './errors.js';
export { FrameDecoder, type Decoded, type FrameSink } from './decoder.js';
export { encodeFrame, FrameType, DEFAULT_MAX_FRAME_SIZE, MIN_FRAME_LENGTH, type Frame, type WireError } from './frame.js';
export type { BodySource } from './body.js';
