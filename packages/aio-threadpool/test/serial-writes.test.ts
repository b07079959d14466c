// Pure logic (no threads, no files): which writes the growth policy counts as parallel.
import { describe, expect, it } from 'vitest';
import { SerialWrites } from '../src/serial-writes.js';

describe('SerialWrites (pure logic)', () => {
  it('an fd not yet known to be O_DIRECT counts perFile of its writes; the rest are excess', () => {
    const writes = new SerialWrites(2);
    for (let i = 0; i < 5; i++) writes.submitted(7);
    expect(writes.excess).toBe(3);
    writes.completed(7, false);
    expect(writes.excess).toBe(2);
    for (let i = 0; i < 4; i++) writes.completed(7, false);
    expect(writes.excess).toBe(0);
  });

  it('each buffered fd has its own allowance', () => {
    const writes = new SerialWrites(2);
    for (let i = 0; i < 3; i++) writes.submitted(7);
    for (let i = 0; i < 4; i++) writes.submitted(8);
    expect(writes.excess).toBe(1 + 2);
  });

  it('a completion that says O_DIRECT frees the rest of that fd; later writes to it count in full', () => {
    const writes = new SerialWrites(2);
    for (let i = 0; i < 6; i++) writes.submitted(9);
    expect(writes.excess).toBe(4);
    writes.completed(9, true); // 5 left, all parallel now
    expect(writes.excess).toBe(0);
    writes.submitted(9);
    writes.submitted(9);
    expect(writes.excess).toBe(0);
    writes.completed(9, true);
    expect(writes.excess).toBe(0);
  });

  it('a completion that says buffered after O_DIRECT was learned (fd number reused) counts the excess again', () => {
    const writes = new SerialWrites(1);
    writes.submitted(4);
    writes.submitted(4);
    writes.completed(4, true);
    for (let i = 0; i < 3; i++) writes.submitted(4); // 4 in the pool, direct
    expect(writes.excess).toBe(0);
    writes.completed(4, false); // 3 left, buffered: 2 beyond the allowance of 1
    expect(writes.excess).toBe(2);
  });

  it('a withdrawn write (direct undefined) changes nothing learned; an fd with nothing in the pool is forgotten', () => {
    const writes = new SerialWrites(2);
    writes.submitted(3);
    writes.submitted(3);
    writes.completed(3, true);
    writes.submitted(3);
    writes.submitted(3);
    writes.completed(3, undefined); // still known as direct
    expect(writes.excess).toBe(0);
    writes.completed(3, true);
    writes.completed(3, true); // none left: forgotten
    for (let i = 0; i < 3; i++) writes.submitted(3); // unknown again: counted as buffered
    expect(writes.excess).toBe(1);
  });

  it('a completion for an fd it never saw is ignored', () => {
    const writes = new SerialWrites(2);
    writes.completed(11, false);
    expect(writes.excess).toBe(0);
  });
});
