/**
 * Pure logic of terminal sessions: which command lines are terminal sessions, the input
 * records a PTY exec's stdin carries (through the protocol's decoder), the window size
 * announced. No processes, no sockets.
 */
import { ExecInputDecoder, ExecInputTag, encodeExecInput } from '@vmlink/agent-protocol';
import { describe, expect, it } from 'vitest';
import { TerminalInput } from '../src/terminal/input-queue.js';
import { terminalName, windowSize } from '../src/terminal/pty-session.js';
import { routeTerminal } from '../src/terminal/route.js';

describe('routeTerminal', () => {
  it('shell and exec -t/-it/--tty are terminal sessions; -i alone is plain exec without it; others pass through', () => {
    expect(routeTerminal(['shell', 'unix:/a.sock'])).toMatchObject({ kind: 'terminal', spec: { verb: 'shell', uri: 'unix:/a.sock', command: 'sh', args: [] } });
    expect(routeTerminal(['exec', '-it', 'unix:/a.sock', '--', 'bash', '-l'])).toMatchObject({ kind: 'terminal', spec: { command: 'bash', args: ['-l'] } });
    expect(routeTerminal(['exec', 'unix:/a.sock', '--tty', '--', 'sh'])).toMatchObject({ kind: 'terminal' });
    expect(routeTerminal(['exec', '-i', 'unix:/a.sock', '--', 'cat', '-t'])).toEqual({ kind: 'cli', argv: ['exec', 'unix:/a.sock', '--', 'cat', '-t'] });
    expect(routeTerminal(['exec', 'unix:/a.sock', '--', 'ls', '-t'])).toEqual({ kind: 'cli', argv: ['exec', 'unix:/a.sock', '--', 'ls', '-t'] });
    expect(routeTerminal(['ls', 'unix:/a.sock', '-t'])).toEqual({ kind: 'cli', argv: ['ls', 'unix:/a.sock', '-t'] });
  });

  it('--env NAME=VALUE, --env NAME from our environment, --cwd, --timeout, --uri', () => {
    const route = routeTerminal(['shell', '--uri', 'unix:/a.sock', '--env', 'A=1=2', '--env', 'HOME', '--cwd', '/w', '--timeout', '2s'], { HOME: '/root' });
    expect(route).toMatchObject({ kind: 'terminal', spec: { uri: 'unix:/a.sock', env: { A: '1=2', HOME: '/root' }, cwd: '/w', timeoutMs: 2000 } });
  });

  it('usage errors name what is wrong', () => {
    expect(routeTerminal(['exec', '-t', 'unix:/a.sock'])).toEqual({ kind: 'usage', message: "exec needs '-- CMD [ARGS...]'" });
    expect(routeTerminal(['shell'])).toMatchObject({ kind: 'usage', message: expect.stringContaining('needs a URI') });
    expect(routeTerminal(['shell', 'u', '--env', '1X=2'])).toMatchObject({ kind: 'usage', message: expect.stringContaining("'1X=2'") });
    expect(routeTerminal(['shell', 'u', '--env', 'UNSET_HERE'], {})).toMatchObject({ kind: 'usage', message: expect.stringContaining('UNSET_HERE') });
    expect(routeTerminal(['shell', 'u', '--timeout', 'soon'])).toMatchObject({ kind: 'usage', message: expect.stringContaining("'soon'") });
    expect(routeTerminal(['shell', 'u', '--bogus'])).toMatchObject({ kind: 'usage', message: expect.stringContaining('--bogus') });
    expect(routeTerminal(['shell', 'u', 'extra'])).toMatchObject({ kind: 'usage', message: expect.stringContaining("'extra'") });
    expect(routeTerminal(['shell', '--help'])).toMatchObject({ kind: 'help' });
  });
});

describe('terminal input records', () => {
  it('typed bytes and resizes keep their order through the decoder, whatever the chunking', async () => {
    const input = new TerminalInput(() => undefined);
    input.type(Buffer.from('ls\r'));
    input.resize({ cols: 120, rows: 40 });
    input.type(Buffer.from('\x03'));
    input.end();
    const wire: Buffer[] = [];
    for await (const chunk of input) wire.push(Buffer.from(chunk));
    const bytes = Buffer.concat(wire);
    const decoder = new ExecInputDecoder();
    const records = [...bytes].flatMap((byte) => decoder.push(Buffer.from([byte])));
    expect(records.map((r) => [r.tag, r.data.toString()])).toEqual([
      [ExecInputTag.DATA, 'ls\r'],
      [ExecInputTag.RESIZE, '{"cols":120,"rows":40}'],
      [ExecInputTag.DATA, '\x03'],
    ]);
  });

  it('is bounded: above its high-water mark type() says stop, and draining below it calls onDrain once', async () => {
    let drains = 0;
    const input = new TerminalInput(() => (drains += 1), 16);
    expect(input.type(Buffer.alloc(4))).toBe(true); // 9 bytes queued
    expect(input.type(Buffer.alloc(4))).toBe(false); // 18: stop
    const iterator = input[Symbol.asyncIterator]();
    await iterator.next();
    expect(drains).toBe(1);
    input.end();
    await iterator.next();
    expect((await iterator.next()).done).toBe(true);
  });

  it('the decoder refuses an unknown tag and an oversized record (ERR_VMLINK_PROTOCOL)', () => {
    expect(() => new ExecInputDecoder().push(Buffer.from([9, 0, 0, 0, 0]))).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_PROTOCOL' }));
    expect(() => new ExecInputDecoder(8).push(encodeExecInput({ data: Buffer.alloc(9) }))).toThrow(/9-byte record/);
  });
});

describe('window size and TERM', () => {
  it('our terminal size, or 80x24 when output is not a terminal; TERM only when it is a plain name', () => {
    expect(windowSize({ isTTY: true, columns: 132, rows: 50 })).toEqual({ cols: 132, rows: 50 });
    expect(windowSize({ isTTY: false })).toEqual({ cols: 80, rows: 24 });
    expect(terminalName('screen-256color')).toBe('screen-256color');
    expect(terminalName('x; rm -rf /')).toBe('xterm-256color');
    expect(terminalName(undefined)).toBe('xterm-256color');
  });
});
