/**
 * streamAttach's accounting (pure logic): an IN-MEMORY DOUBLE of a detached process (real
 * OutputRings, no process) whose output keeps flooding while the attach waits for its
 * client. Whatever the ring drops during a send must come back as a GAP: received +
 * gaps = written, exactly.
 */
import { DetachedRecordDecoder, DetachedRecordTag } from '@vmlink/agent-protocol';
import { describe, expect, it } from 'vitest';
import { streamAttach } from '../src/detached/attach.js';
import { OutputRing } from '../src/detached/output-ring.js';
import type { DetachedProcess, OutputStream } from '../src/detached/process.js';

function floodingProcessDouble(capacity: number) {
  const rings = { stdout: new OutputRing(capacity), stderr: new OutputRing(capacity) };
  const listeners = new Set<() => void>();
  let exited = false;
  const double = {
    ring: (stream: OutputStream) => rings[stream],
    subscribe: (onChange: () => void) => {
      listeners.add(onChange);
      return () => listeners.delete(onChange);
    },
    get exited() {
      return exited;
    },
    exitResult: { exitCode: 0, signal: null },
    deliveredUpTo: () => 0,
    markDelivered: () => undefined,
  };
  const write = (bytes: number): void => {
    rings.stdout.write(Buffer.alloc(bytes, 7));
    for (const wake of listeners) wake();
  };
  const exit = (): void => {
    exited = true;
    for (const wake of listeners) wake();
  };
  return { entry: double as unknown as DetachedProcess, write, exit };
}

describe('streamAttach accounting (in-memory process double)', () => {
  it('bytes dropped while a GAP or data record is being sent are reported too: received + gaps = written', async () => {
    const { entry, write, exit } = floodingProcessDouble(64 * 1024);
    let written = 0;
    const flood = (bytes: number): void => {
      written += bytes;
      write(bytes);
    };
    flood(32 * 1024); // fits the ring: nothing is lost before the attach begins
    const decoder = new DetachedRecordDecoder();
    let received = 0;
    let gaps = 0;
    let sends = 0;
    // Every send lets the process write 100 KiB more before the client takes the record:
    // more than the ring keeps, so each wait drops bytes.
    const send = async (chunk: Uint8Array): Promise<void> => {
      for (const record of decoder.push(chunk)) {
        if (record.tag === DetachedRecordTag.STDOUT) received += record.data.length;
        if (record.tag === DetachedRecordTag.GAP) gaps += (JSON.parse(record.data.toString()) as { bytes: number }).bytes;
      }
      sends += 1;
      await Promise.resolve();
      if (sends < 40) flood(100 * 1024);
      else if (sends === 40) exit();
    };
    await streamAttach(entry, { stdout: 0, stderr: 0 }, send, new AbortController().signal);
    expect(gaps).toBeGreaterThan(0);
    expect(received + gaps).toBe(written);
  });
});
