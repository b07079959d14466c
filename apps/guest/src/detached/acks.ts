import { DetachedAckDecoder, parseDetachedAck, type DetachedOffsets } from '@vmlink/agent-protocol';
import { AgentErrorCode, agentError } from '../errors.js';
import type { DetachedProcess, OutputStream } from './process.js';

const STREAMS: readonly OutputStream[] = ['stdout', 'stderr'];

/**
 * Reads an attach client's acknowledgements (detached.attach with `ack`): each ACK says how
 * far into each stream the client has written out, and only that moves where the next
 * attach continues; bytes sent to a client that died before writing them out are shown
 * again. `sentUpTo` is what this attach has sent so far (kept current by the caller): an
 * ACK beyond it, a malformed record or a body cut inside a record is INVALID_PARAMS and
 * moves nothing. Memory: one small pending record.
 */
export async function readAttachAcks(body: AsyncIterable<Uint8Array>, entry: DetachedProcess, sentUpTo: Readonly<DetachedOffsets>): Promise<void> {
  const decoder = new DetachedAckDecoder();
  try {
    for await (const chunk of body) {
      for (const record of decoder.push(chunk)) {
        const acked = parseDetachedAck(record.data);
        for (const stream of STREAMS) {
          if (acked[stream] > sentUpTo[stream]) {
            throw agentError(AgentErrorCode.INVALID_PARAMS, `detached.attach: the client acknowledged ${stream} up to byte ${acked[stream]}, beyond the ${sentUpTo[stream]} sent to it`);
          }
        }
        for (const stream of STREAMS) entry.markDelivered(stream, acked[stream]);
      }
    }
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ERR_VMLINK_PROTOCOL') throw agentError(AgentErrorCode.INVALID_PARAMS, `detached.attach: ${(error as Error).message}`);
    throw error;
  }
  if (decoder.buffered > 0) throw agentError(AgentErrorCode.INVALID_PARAMS, `detached.attach: the acknowledgements ended inside a record (${decoder.buffered} bytes)`);
}
