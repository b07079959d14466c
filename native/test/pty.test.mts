// src/pty against the real kernel: a child in its own session on a new terminal (its
// stdio and controlling tty), window sizes, the exit reaped through a pidfd (code and
// signal), EIO on the master as the end, errno-named errors for bad spawns, bad sizes
// refused, and no fd left behind by a spawn, a failed spawn or a finished watcher.
import { closeSync, openSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const native = require('../index.cjs') as typeof import('../index.cjs', { with: { 'resolution-mode': 'require' } });

interface PtyBinding {
  ptyOpen(cols: number, rows: number): { master: number; slave: number; path: string };
  ptySpawn(options: Record<string, unknown>): { pid: number; master: number };
  ptyResize(fd: number, cols: number, rows: number): void;
  ptyGetSize(fd: number): { cols: number; rows: number };
  tcgetattr(fd: number): Buffer;
  PidWatcher: new (pid: number, onExit: (r: { code?: number | null; signal?: number | null }) => void) => { close(): void; readonly done: boolean };
}
const binding = native.loadBinding() as unknown as PtyBinding & ReturnType<typeof native.loadBinding>;

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** Spawns `sh -c script` on a terminal; resolves with everything shown and how it ended. */
function runOnTerminal(script: string, options: Record<string, unknown> = {}): Promise<{ screen: string; exit: { code?: number | null; signal?: number | null }; endCode: string | undefined }> {
  const { pid, master } = binding.ptySpawn({ file: '/bin/sh', args: ['sh', '-c', script], env: ['PATH=/usr/bin:/bin', 'TERM=dumb'], cols: 90, rows: 33, ...options });
  return new Promise((resolve) => {
    let screen = '';
    let exit: { code?: number | null; signal?: number | null } | undefined;
    let endCode: string | undefined;
    let ended = false;
    const settle = (): void => {
      if (ended && exit) resolve({ screen, exit, endCode });
    };
    const stream = new binding.FdStream(master, { readSize: 65536 }, {
      onData: (chunk: Buffer) => (screen += chunk.toString()),
      onError: (error: NodeJS.ErrnoException) => {
        endCode = error.code;
        ended = true;
        stream.close();
        settle();
      },
    });
    stream.readStart();
    new binding.PidWatcher(pid, (result) => {
      exit = result;
      settle();
    });
  });
}

describe('src/pty', () => {
  it('the child gets the terminal as stdio and controlling tty, its own session, the size, env and cwd; EIO ends the master; the exit code comes back', async () => {
    const before = openFds();
    const { screen, exit, endCode } = await runOnTerminal('stty size; test -t 0 && test -t 2 && echo tty-ok; ps -o sid= -p $$ | tr -d " "; echo "pid=$$ $TERM $(pwd)"; exit 5', { cwd: '/tmp' });
    expect(screen).toContain('33 90\r\n');
    expect(screen).toContain('tty-ok\r\n');
    const pid = /pid=(\d+)/.exec(screen)?.[1];
    // Session leader: its session id is its own pid.
    expect(screen).toContain(`${pid}\r\npid=${pid} dumb /tmp\r\n`);
    expect(exit).toEqual({ code: 5, signal: null });
    expect(endCode).toBe('EIO');
    expect(openFds()).toBe(before);
  }, 60_000);

  it('a signal death is reported by number; a typed Ctrl-C is SIGINT for the foreground group', async () => {
    const killed = await runOnTerminal('kill -TERM $$');
    expect(killed.exit).toEqual({ code: null, signal: osConstants.signals.SIGTERM });
    const { pid, master } = binding.ptySpawn({ file: '/bin/sh', args: ['sh', '-c', 'echo ready; exec sleep 1000'], env: [], cols: 80, rows: 24 });
    const exited = new Promise((resolve) => new binding.PidWatcher(pid, resolve));
    const stream = new binding.FdStream(master, undefined, {
      onData: (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) stream.write(Buffer.from('\x03'), () => undefined);
      },
      onError: () => stream.close(),
    });
    stream.readStart();
    expect(await exited).toEqual({ code: null, signal: osConstants.signals.SIGINT });
  }, 60_000);

  it('PidWatcher runs JS like any Node I/O callback: microtasks queued in onExit run before the next immediate', async () => {
    // Without MakeCallback they waited for the next unrelated callback (Node 26: ~30 s).
    const { pid, master } = binding.ptySpawn({ file: '/bin/sh', args: ['sh', '-c', 'exit 0'], env: [], cols: 80, rows: 24 });
    try {
      const order = await new Promise<string[]>((resolve) => {
        const seen: string[] = [];
        new binding.PidWatcher(pid, () => {
          queueMicrotask(() => seen.push('microtask'));
          setImmediate(() => {
            seen.push('immediate');
            resolve(seen);
          });
        });
      });
      expect(order).toEqual(['microtask', 'immediate']);
    } finally {
      closeSync(master);
    }
  });

  it('resize and size through the master; tcgetattr of a fresh pair; ptyOpen fds are close-on-exec', () => {
    const { master, slave, path } = binding.ptyOpen(100, 30);
    try {
      expect(path).toMatch(/^\/dev\/pts\/\d+$/);
      expect(binding.ptyGetSize(slave)).toEqual({ cols: 100, rows: 30 });
      binding.ptyResize(master, 120, 40);
      expect(binding.ptyGetSize(slave)).toEqual({ cols: 120, rows: 40 });
      expect(binding.tcgetattr(master).equals(binding.tcgetattr(slave))).toBe(true);
    } finally {
      new binding.FdStream(master, undefined, { onData: () => undefined, onError: () => undefined }).close();
      new binding.FdStream(slave, undefined, { onData: () => undefined, onError: () => undefined }).close();
    }
  });

  it('bad input: errno-named errors (ENOENT for a missing program or cwd, ENOTTY), RangeError/TypeError for sizes and args; no fd left behind', () => {
    const before = openFds();
    expect(() => binding.ptySpawn({ file: '/nonexistent/prog', args: [], env: [], cols: 80, rows: 24 })).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'posix_spawn' }));
    expect(() => binding.ptySpawn({ file: '/bin/sh', args: ['sh'], env: [], cwd: '/nonexistent-dir', cols: 80, rows: 24 })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => binding.ptySpawn({ file: '/bin/sh', args: ['sh'], env: [], cols: 0, rows: 24 })).toThrow(RangeError);
    expect(() => binding.ptySpawn({ file: '/bin/sh', args: ['sh'], env: [], cols: 80, rows: 70000 })).toThrow(RangeError);
    expect(() => binding.ptySpawn({ file: '/bin/sh', args: ['a\u0000b'], env: [], cols: 80, rows: 24 })).toThrow(/NUL/);
    expect(() => binding.ptySpawn({ file: '/bin/sh', args: 'sh', env: [], cols: 80, rows: 24 })).toThrow(TypeError);
    const notTty = openSync('/dev/null', 'r');
    try {
      expect(() => binding.ptyResize(notTty, 80, 24)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    } finally {
      closeSync(notTty);
    }
    expect(() => new binding.PidWatcher(-1, () => undefined)).toThrow(RangeError);
    expect(openFds()).toBe(before);
  });
});
