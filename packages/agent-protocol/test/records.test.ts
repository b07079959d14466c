import { describe, expect, it } from 'vitest';
import { EXEC_RECORD_HEADER, ExecRecordDecoder, ExecRecordTag, METHODS, encodeExecRecord, isMethodName, describeAgentError, AgentErrorCode, AGENT_ERROR_WORDS, DetachedAckDecoder, DetachedAttachCursor, DetachedRecordDecoder, DetachedRecordTag, encodeDetachedAck, encodeDetachedRecord, parseDetachedAck } from '../src/index.js';

describe('exec records (pure)', () => {
  it('round-trips records split at every byte boundary', () => {
    const stream = Buffer.concat([
      encodeExecRecord(ExecRecordTag.STDOUT, Buffer.from('out')),
      encodeExecRecord(ExecRecordTag.STDERR, Buffer.alloc(0)),
      encodeExecRecord(ExecRecordTag.EXIT, Buffer.from('{"exitCode":0,"signal":null}')),
    ]);
    for (let cut = 0; cut <= stream.length; cut += 1) {
      const decoder = new ExecRecordDecoder();
      const records = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
      expect(records.map((r) => [r.tag, r.data.toString()])).toEqual([
        [1, 'out'],
        [2, ''],
        [3, '{"exitCode":0,"signal":null}'],
      ]);
      expect(decoder.buffered).toBe(0);
    }
  });

  it('refuses an oversized record before buffering it, and unknown tags', () => {
    const header = Buffer.alloc(EXEC_RECORD_HEADER);
    header.writeUInt8(1, 0);
    header.writeUInt32BE(1025, 1);
    expect(() => new ExecRecordDecoder(1024).push(header)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_PROTOCOL', message: expect.stringContaining('1025-byte') }));
    header.writeUInt8(9, 0);
    expect(() => new ExecRecordDecoder().push(header)).toThrow(/unknown record tag 9/);
  });
});

describe('methods and codes', () => {
  it('names methods once and every agent code has words', () => {
    expect(new Set(METHODS).size).toBe(METHODS.length);
    expect(isMethodName('fs.mkdir')).toBe(true);
    expect(isMethodName('fs.nope')).toBe(false);
    for (const code of Object.values(AgentErrorCode)) expect(AGENT_ERROR_WORDS[code], code).toBeTruthy();
    expect(describeAgentError('ERR_VMLINK_METHOD_BLOCKED')).toMatch(/not enabled on this agent/);
    expect(describeAgentError('ENOENT')).toBeUndefined();
  });
});

describe('detached attach acknowledgements (pure)', () => {
  it('DetachedAttachCursor counts data and gaps from the start, ignores EXIT; an ACK round-trips', () => {
    const cursor = new DetachedAttachCursor({ stdout: 10, stderr: 3 });
    const body = Buffer.concat([
      encodeDetachedRecord(DetachedRecordTag.STDOUT, Buffer.from('abc')),
      encodeDetachedRecord(DetachedRecordTag.GAP, Buffer.from('{"stream":"stderr","bytes":100}')),
      encodeDetachedRecord(DetachedRecordTag.STDERR, Buffer.from('x')),
      encodeDetachedRecord(DetachedRecordTag.EXIT, Buffer.from('{"exitCode":0,"signal":null}')),
    ]);
    const moved = new DetachedRecordDecoder().push(body).map((record) => cursor.advance(record));
    expect(moved).toEqual([true, true, true, false]);
    expect(cursor.offsets).toEqual({ stdout: 13, stderr: 104 });
    const [ack] = new DetachedAckDecoder().push(encodeDetachedAck(cursor.offsets));
    expect(parseDetachedAck(ack!.data)).toEqual({ stdout: 13, stderr: 104 });
  });

  it('a malformed GAP from the agent is ERR_VMLINK_PROTOCOL naming it, not a NaN offset', () => {
    const cursor = new DetachedAttachCursor({ stdout: 0, stderr: 0 });
    for (const gap of ['{"stream":"stdin","bytes":1}', '{"stream":"stdout","bytes":-1}', '{"stream":"stdout"}', 'null']) {
      expect(() => cursor.advance({ tag: DetachedRecordTag.GAP, data: Buffer.from(gap) })).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_PROTOCOL', message: expect.stringContaining(gap) }));
    }
    expect(cursor.offsets).toEqual({ stdout: 0, stderr: 0 });
  });
});
