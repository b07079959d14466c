import { describe, expect, it } from 'vitest';
import { routeRead, routeWrite, type FileFacts, type GuardPolicy } from '../src/guard.js';
import { PROBE_WRITES, WriteNowaitProbe } from '../src/write-nowait.js';

// Pure routing logic over in-memory file facts (no I/O here; the I/O tests are in routing.test.ts).
const allocatedDirect: FileFacts = { direct: true, append: false, sparse: false, size: 1 << 20 };
const guarded: GuardPolicy = { guard: true, bufferedReads: 'nowait', readNowait: true, writeNowait: true, coldReads: false };
const strict: GuardPolicy = { guard: false, bufferedReads: 'nowait', readNowait: true, writeNowait: true, coldReads: false };

describe('blocking guard (pure routing)', () => {
  it('sends reads to the kernel with NOWAIT, buffered ones too unless told otherwise', () => {
    expect(routeRead(allocatedDirect, guarded)).toEqual({ to: 'kernel', nowait: true });
    expect(routeRead({ ...allocatedDirect, direct: false }, guarded)).toEqual({ to: 'kernel', nowait: true });
    expect(routeRead({ ...allocatedDirect, direct: false }, { ...guarded, bufferedReads: 'fallback' })).toEqual({ to: 'fallback', reason: 'buffered' });
    expect(routeRead(allocatedDirect, strict)).toEqual({ to: 'kernel', nowait: false });
    // Where NOWAIT is not supported (EOPNOTSUPP seen): direct reads stay in the kernel, buffered ones are routed.
    expect(routeRead(allocatedDirect, { ...guarded, readNowait: false })).toEqual({ to: 'kernel', nowait: false });
    expect(routeRead({ ...allocatedDirect, direct: false }, { ...guarded, readNowait: false })).toEqual({ to: 'fallback', reason: 'buffered' });
  });

  it('routes writes that would block: buffered, append, sparse, extending', () => {
    expect(routeWrite({ ...allocatedDirect, direct: false }, 4096, guarded)).toEqual({ to: 'fallback', reason: 'buffered' });
    expect(routeWrite({ ...allocatedDirect, append: true }, 4096, guarded)).toEqual({ to: 'fallback', reason: 'append' });
    expect(routeWrite({ ...allocatedDirect, sparse: true }, 4096, guarded)).toEqual({ to: 'fallback', reason: 'sparse' });
    expect(routeWrite(allocatedDirect, (1 << 20) + 512, guarded)).toEqual({ to: 'fallback', reason: 'extends' });
    expect(routeWrite(allocatedDirect, Number.NaN, guarded)).toEqual({ to: 'fallback', reason: 'extends' });
  });

  it('keeps aligned overwrites of allocated direct files in the kernel, NOWAIT as the probe allows', () => {
    expect(routeWrite(allocatedDirect, 1 << 20, guarded)).toEqual({ to: 'kernel', nowait: true });
    expect(routeWrite(allocatedDirect, 4096, { ...guarded, writeNowait: false })).toEqual({ to: 'kernel', nowait: false });
  });

  it('strict sends every write to the kernel without NOWAIT', () => {
    expect(routeWrite({ direct: false, append: true, sparse: true, size: 0 }, 4096, strict)).toEqual({ to: 'kernel', nowait: false });
  });
});

describe('write NOWAIT probe (pure)', () => {
  it(`switches off after ${PROBE_WRITES} EAGAINs without a success`, () => {
    const probe = new WriteNowaitProbe();
    for (let i = 0; i < PROBE_WRITES - 1; i++) probe.wouldBlock(7);
    expect(probe.mode(7)).toBe('probing');
    expect(probe.enabled(7)).toBe(true);
    probe.wouldBlock(7);
    expect(probe.mode(7)).toBe('off');
    expect(probe.enabled(7)).toBe(false);
    expect(probe.mode(8)).toBe('probing');
  });

  it('takes its number of EAGAINs from the writeNowaitProbeWrites option', () => {
    const probe = new WriteNowaitProbe(1);
    probe.wouldBlock(5);
    expect(probe.mode(5)).toBe('off');
    const patient = new WriteNowaitProbe(10);
    for (let i = 0; i < 9; i++) patient.wouldBlock(5);
    expect(patient.mode(5)).toBe('probing');
    patient.wouldBlock(5);
    expect(patient.mode(5)).toBe('off');
  });

  it('stays on for good once a NOWAIT write succeeded', () => {
    const probe = new WriteNowaitProbe();
    probe.succeeded(3);
    for (let i = 0; i < PROBE_WRITES * 2; i++) probe.wouldBlock(3);
    expect(probe.mode(3)).toBe('on');
    expect([...probe.modes()]).toEqual([[3, 'on']]);
  });
});
