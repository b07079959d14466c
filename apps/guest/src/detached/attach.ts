import { DetachedRecordTag, encodeDetachedRecord, type DetachedGap, type DetachedOffsets } from '@vmlink/agent-protocol';
import type { DetachedProcess, OutputStream } from './process.js';

/** Largest data record an attach sends: the client's window takes it in a few frames. */
const MAX_RECORD_DATA = 64 * 1024;
const STREAMS: readonly OutputStream[] = ['stdout', 'stderr'];

/**
 * Where an attach begins on each stream, and what it can no longer show: it wants the very
 * first byte (`fromStart`), else where the furthest attach so far stopped (so attaching
 * again after a reconnect continues); what the ring no longer holds of that is `lost`
 * (reported in the result) and the body begins at the oldest byte kept instead.
 */
export function attachStart(entry: DetachedProcess, fromStart: boolean): { start: DetachedOffsets; lost: DetachedOffsets } {
  const wanted = fromStart ? { stdout: 0, stderr: 0 } : { stdout: entry.deliveredUpTo('stdout'), stderr: entry.deliveredUpTo('stderr') };
  const start = { stdout: Math.max(wanted.stdout, entry.stdout.start), stderr: Math.max(wanted.stderr, entry.stderr.start) };
  return { start, lost: { stdout: start.stdout - wanted.stdout, stderr: start.stderr - wanted.stderr } };
}

/**
 * Streams a detached process's output from `start`: what the rings hold, then live output
 * as it arrives, then the EXIT record. `send` resolves when the client can take more; the
 * process is never slowed by it: if the reader lags past what the ring keeps (also between
 * attachStart and now), a GAP record says how much it missed. `sentTo` hears a stream's
 * offset once a data or GAP record for it went out. Ends early (rejecting) when `signal` aborts (client gone).
 */
export async function streamAttach(
  entry: DetachedProcess,
  start: DetachedOffsets,
  send: (chunk: Uint8Array) => Promise<void>,
  signal: AbortSignal,
  sentTo: (stream: OutputStream, offset: number) => void,
): Promise<void> {
  const cursor = { stdout: start.stdout, stderr: start.stderr };
  let wake: (() => void) | undefined;
  const unsubscribe = entry.subscribe(() => wake?.());
  const onAbort = (): void => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason as Error;
      // Read the exit state before the rings: output collected before the exit is complete then.
      const exited = entry.exited;
      let sent = false;
      for (const stream of STREAMS) {
        const ring = entry.ring(stream);
        if (ring.start > cursor[stream]) {
          // Move the cursor before waiting for the client: whatever the ring drops while
          // this record goes out is the next GAP, never unreported.
          const gap: DetachedGap = { stream, bytes: ring.start - cursor[stream] };
          cursor[stream] = ring.start;
          await send(encodeDetachedRecord(DetachedRecordTag.GAP, Buffer.from(JSON.stringify(gap))));
          sentTo(stream, cursor[stream]);
          sent = true; // look again: more may have been dropped while we waited
          continue;
        }
        const data = ring.read(cursor[stream], MAX_RECORD_DATA);
        if (data.length > 0) {
          await send(encodeDetachedRecord(stream === 'stdout' ? DetachedRecordTag.STDOUT : DetachedRecordTag.STDERR, data));
          cursor[stream] += data.length;
          sentTo(stream, cursor[stream]);
          sent = true;
        }
      }
      if (sent) continue;
      if (exited) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (signal.aborted) resolve();
      });
      wake = undefined;
    }
    const result = entry.exitResult ?? { exitCode: null, signal: null };
    await send(encodeDetachedRecord(DetachedRecordTag.EXIT, Buffer.from(JSON.stringify(result))));
  } finally {
    unsubscribe();
    signal.removeEventListener('abort', onAbort);
  }
}
