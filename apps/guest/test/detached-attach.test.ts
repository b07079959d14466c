/**
 * streamAttach's accounting (pure logic): an IN-MEMORY DOUBLE of a detached process (real
 * OutputRings, no process) whose output keeps flooding while the attach waits for its
 * client. Whatever the ring drops during a send must come back as a GAP: received +
 * gaps = written, exactly. And readAttachAcks on in-memory bodies: what moves the
 * continue point, and every malformed acknowledgement refused.
 */
import { DetachedRecordDecoder, DetachedRecordTag, encodeDetachedAck } from '@vmlink/agent-protocol';
import { describe, expect, it } from 'vitest';
import { readAttachAcks } from '../src/detached/acks.js';
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
    let sentTo = 0;
    await streamAttach(entry, { stdout: 0, stderr: 0 }, send, new AbortController().signal, (stream, offset) => {
      expect(stream).toBe('stdout');
      expect(offset).toBeGreaterThanOrEqual(sentTo);
      sentTo = offset;
    });
    expect(gaps).toBeGreaterThan(0);
    expect(received + gaps).toBe(written);
    // What the client can acknowledge at the end: everything, data and gaps alike.
    expect(sentTo).toBe(written);
  });
});

/** The continue point of an IN-MEMORY DOUBLE of a detached process (only markDelivered). */
function deliveredDouble() {
  const delivered = { stdout: 0, stderr: 0 };
  const entry = {
    markDelivered: (stream: OutputStream, offset: number) => {
      delivered[stream] = Math.max(delivered[stream], offset);
    },
  } as unknown as DetachedProcess;
  return { entry, delivered };
}

async function* chunks(...parts: Uint8Array[]): AsyncIterable<Uint8Array> {
  yield* parts;
}

describe('readAttachAcks (pure logic, an in-memory body)', () => {
  it('each ACK moves the continue point, whatever the chunking; never backwards', async () => {
    const { entry, delivered } = deliveredDouble();
    const body = Buffer.concat([encodeDetachedAck({ stdout: 2, stderr: 0 }), encodeDetachedAck({ stdout: 7, stderr: 3 }), encodeDetachedAck({ stdout: 5, stderr: 1 })]);
    // One byte at a time: records split anywhere.
    await readAttachAcks(chunks(...[...body].map((b) => Uint8Array.of(b))), entry, { stdout: 10, stderr: 10 });
    expect(delivered).toEqual({ stdout: 7, stderr: 3 });
  });

  it('an ACK beyond what was sent is INVALID_PARAMS naming the stream and both offsets, and moves nothing', async () => {
    const { entry, delivered } = deliveredDouble();
    const sent = { stdout: 4, stderr: 0 };
    await expect(readAttachAcks(chunks(encodeDetachedAck({ stdout: 2, stderr: 0 }), encodeDetachedAck({ stdout: 4, stderr: 1 })), entry, sent)).rejects.toMatchObject({
      code: 'ERR_VMLINK_INVALID_PARAMS',
      message: expect.stringMatching(/stderr up to byte 1, beyond the 0 sent/),
    });
    expect(delivered).toEqual({ stdout: 2, stderr: 0 });
  });

  it('malformed ACKs are INVALID_PARAMS: not JSON, a negative or fractional offset, an unknown tag, an oversized record, a cut record', async () => {
    const sent = { stdout: 100, stderr: 100 };
    const record = (tag: number, text: string): Buffer => {
      const data = Buffer.from(text);
      const header = Buffer.alloc(5);
      header.writeUInt8(tag, 0);
      header.writeUInt32BE(data.length, 1);
      return Buffer.concat([header, data]);
    };
    const cases: [Uint8Array, RegExp][] = [
      [record(1, 'nope'), /not JSON/],
      [record(1, '{"stdout":-1,"stderr":0}'), /stdout must be an integer >= 0, got -1/],
      [record(1, '{"stdout":1.5,"stderr":0}'), /stdout must be an integer >= 0, got 1.5/],
      [record(1, '{"stdout":1}'), /stderr must be an integer >= 0, got undefined/],
      [record(9, '{}'), /unknown record tag 9/],
      [record(1, 'x'.repeat(300)), /a 300-byte record \(at most 256\)/],
      [encodeDetachedAck({ stdout: 1, stderr: 1 }).subarray(0, 8), /ended inside a record \(8 bytes\)/],
    ];
    for (const [body, message] of cases) {
      const { entry, delivered } = deliveredDouble();
      await expect(readAttachAcks(chunks(body), entry, sent)).rejects.toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringMatching(message) });
      expect(delivered).toEqual({ stdout: 0, stderr: 0 });
    }
  });
});
