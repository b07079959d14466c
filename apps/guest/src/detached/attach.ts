import { DetachedRecordTag, encodeDetachedRecord, type DetachedGap } from '@vmlink/agent-protocol';
import type { DetachedProcess, OutputStream } from './process.js';

/** Largest data record an attach sends: the client's window takes it in a few frames. */
const MAX_RECORD_DATA = 64 * 1024;
const STREAMS: readonly OutputStream[] = ['stdout', 'stderr'];

export interface AttachStart {
  readonly stdout: number;
  readonly stderr: number;
}

/**
 * Where an attach wants to begin on each stream: the very first byte (`fromStart`), else
 * where the furthest attach so far stopped (so attaching again after a reconnect
 * continues). What the ring no longer holds of that is reported as lost.
 */
export function attachStart(entry: DetachedProcess, fromStart: boolean): AttachStart {
  return fromStart ? { stdout: 0, stderr: 0 } : { stdout: entry.deliveredUpTo('stdout'), stderr: entry.deliveredUpTo('stderr') };
}

/** Bytes between `start` and the oldest byte kept: gone before this attach began. */
export function lostBefore(entry: DetachedProcess, start: AttachStart): { stdout: number; stderr: number } {
  return { stdout: Math.max(0, entry.stdout.start - start.stdout), stderr: Math.max(0, entry.stderr.start - start.stderr) };
}

/**
 * Streams a detached process's output from `start`: what the rings hold, then live output
 * as it arrives, then the EXIT record. `send` resolves when the client can take more; the
 * process is never slowed by it: if the reader lags past what the ring keeps, a GAP record
 * says how much it missed. Ends early (rejecting) when `signal` aborts (client gone).
 */
export async function streamAttach(entry: DetachedProcess, start: AttachStart, send: (chunk: Uint8Array) => Promise<void>, signal: AbortSignal): Promise<void> {
  const cursor = { stdout: start.stdout, stderr: start.stderr };
  // Start behind the ring: that part is reported in the result (lost), not as a GAP.
  for (const stream of STREAMS) cursor[stream] = Math.max(cursor[stream], entry.ring(stream).start);
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
          sent = true; // look again: more may have been dropped while we waited
          continue;
        }
        const data = ring.read(cursor[stream], MAX_RECORD_DATA);
        if (data.length > 0) {
          await send(encodeDetachedRecord(stream === 'stdout' ? DetachedRecordTag.STDOUT : DetachedRecordTag.STDERR, data));
          cursor[stream] += data.length;
          entry.markDelivered(stream, cursor[stream]);
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
