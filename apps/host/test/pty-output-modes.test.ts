/**
 * Our terminal's output processing during a remote session (src/terminal/output-modes.ts),
 * on a real pseudo-terminal opened with the addon: what a program writes to the terminal
 * and what the terminal shows (the master's bytes), before, during and after.
 * withoutOutputProcessing is also checked as pure logic on made-up bytes.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { addonTermios, passOutputThrough, withoutOutputProcessing, type TermiosCalls } from '../src/terminal/output-modes.js';
import { ptyBinding } from './terminal-harness.js';

interface OpenTerminal {
  readonly slave: number;
  /** Writes `text` as a program would and resolves with what the terminal shows for it. */
  shows(text: string): Promise<string>;
  close(): void;
}

const open: OpenTerminal[] = [];

function openTerminal(): OpenTerminal {
  const b = ptyBinding();
  const { master, slave } = b.ptyOpen(80, 24);
  let shown = '';
  let wake: (() => void) | undefined;
  const stream = new b.FdStream(master, { readSize: 4096 }, {
    onData: (chunk: Buffer) => {
      shown += chunk.toString('latin1');
      wake?.();
    },
    onError: () => undefined,
  });
  stream.readStart();
  const terminal: OpenTerminal = {
    slave,
    shows: async (text) => {
      // The end marker has no newline: it shows as written whatever the modes.
      const marker = `<${open.length}-${Math.random().toString(36).slice(2)}>`;
      shown = '';
      writeSync(slave, `${text}${marker}`);
      while (!shown.includes(marker)) await new Promise<void>((resolve) => (wake = resolve));
      return shown.slice(0, shown.indexOf(marker));
    },
    close: () => {
      stream.close();
      closeSync(slave);
    },
  };
  open.push(terminal);
  return terminal;
}

function termios(): TermiosCalls {
  const calls = addonTermios();
  if (!calls) throw new Error('the addon has no tcsetattr/termiosLayout: rebuild it (npm run build -w @vmlink/native)');
  return calls;
}

afterEach(() => {
  for (const terminal of open.splice(0)) terminal.close();
});

describe('output processing off while a remote terminal runs', () => {
  it("a real terminal: \\n shows as \\r\\n before (ONLCR), unchanged while passed through, \\r\\n again after; the modes come back byte for byte", async () => {
    const calls = termios();
    const terminal = openTerminal();
    const before = calls.tcgetattr(terminal.slave);
    expect(await terminal.shows('a\nb\n')).toBe('a\r\nb\r\n');

    const restore = passOutputThrough(terminal.slave, calls);
    expect(await terminal.shows('a\r\nb\r\n\tc\n')).toBe('a\r\nb\r\n\tc\n');
    expect(calls.tcgetattr(terminal.slave).equals(before)).toBe(false);

    restore();
    restore(); // idempotent
    expect(calls.tcgetattr(terminal.slave).equals(before)).toBe(true);
    expect(await terminal.shows('a\nb\n')).toBe('a\r\nb\r\n');
  });

  it('output that is not a terminal (a file) or no fd: nothing changes, nothing throws', () => {
    const calls = termios();
    const fd = openSync('/dev/null', 'w');
    try {
      const restore = passOutputThrough(fd, calls);
      expect(() => restore()).not.toThrow();
    } finally {
      closeSync(fd);
    }
    expect(() => passOutputThrough(undefined, calls)()).not.toThrow();
    expect(() => passOutputThrough(1, undefined)()).not.toThrow();
  });

  it('a terminal hung up before the restore (its master closed): the restore does not throw', () => {
    const calls = termios();
    const b = ptyBinding();
    const { master, slave } = b.ptyOpen(80, 24);
    try {
      const restore = passOutputThrough(slave, calls);
      closeSync(master);
      expect(() => restore()).not.toThrow();
    } finally {
      closeSync(slave);
    }
  });

  it('tcsetattr refuses bytes that are not a struct termios, naming the sizes', () => {
    const calls = termios();
    const terminal = openTerminal();
    expect(() => calls.tcsetattr(terminal.slave, Buffer.alloc(3))).toThrow(new RegExp(`must be ${calls.termiosLayout.size} bytes.*got 3`));
  });

  it('withoutOutputProcessing (pure logic, made-up bytes): clears only OPOST in c_oflag, in either byte order, and leaves its input alone', () => {
    const layout = { size: 16, oflagOffset: 4, OPOST: 0x1, ONLCR: 0x4 };
    const modes = Buffer.alloc(16, 0xff);
    for (const order of ['LE', 'BE'] as const) {
      const out = withoutOutputProcessing(modes, layout, order);
      const oflag = order === 'LE' ? out.readUInt32LE(4) : out.readUInt32BE(4);
      expect(oflag).toBe(0xfffffffe);
      expect(Buffer.concat([out.subarray(0, 4), out.subarray(8)]).equals(Buffer.alloc(12, 0xff))).toBe(true);
    }
    expect(modes.equals(Buffer.alloc(16, 0xff))).toBe(true);
    expect(() => withoutOutputProcessing(Buffer.alloc(15), layout)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/must be 16 bytes, got 15/) }));
    // The real layout: a fresh terminal has OPOST on, the edited copy has it off.
    const real = termios().termiosLayout;
    const b = ptyBinding();
    const { master, slave } = b.ptyOpen(80, 24);
    try {
      const fresh = b.tcgetattr(slave);
      const read = (m: Buffer): number => (endianness() === 'LE' ? m.readUInt32LE(real.oflagOffset) : m.readUInt32BE(real.oflagOffset));
      expect(read(fresh) & real.OPOST).toBe(real.OPOST);
      expect(read(withoutOutputProcessing(fresh, real)) & real.OPOST).toBe(0);
    } finally {
      closeSync(slave);
      closeSync(master);
    }
  });
});
