/**
 * A real terminal for tests: the CLI runs as the session leader of a pseudo-terminal the
 * test opens with the vmlink addon (native/src/pty), exactly as under a terminal emulator;
 * the test types into the master, reads what the terminal shows, resizes it and reads
 * its modes.
 */
import { loadBinding } from '@vmlink/native';
import type { FdStream, FdStreamBinding } from '@vmlink/native';

interface PtyBinding {
  ptyOpen(cols: number, rows: number): { master: number; slave: number; path: string };
  ptySpawn(options: { file: string; args: readonly string[]; env: readonly string[]; cwd?: string; cols: number; rows: number }): { pid: number; master: number };
  ptyResize(fd: number, cols: number, rows: number): void;
  tcgetattr(fd: number): Buffer;
  PidWatcher: new (pid: number, onExit: (result: { code?: number | null; signal?: number | null }) => void) => { close(): void };
}

export function ptyBinding(): PtyBinding & FdStreamBinding {
  return loadBinding() as unknown as PtyBinding & FdStreamBinding;
}

/** The modes a new pseudo-terminal starts with (what a program must leave behind). */
export function freshTerminalModes(): Buffer {
  const b = ptyBinding();
  const { master, slave } = b.ptyOpen(80, 24);
  try {
    return b.tcgetattr(slave);
  } finally {
    // Plain close through an FdStream-less path: the fds are ours.
    new b.FdStream(master, undefined, { onData: () => undefined, onError: () => undefined }).close();
    new b.FdStream(slave, undefined, { onData: () => undefined, onError: () => undefined }).close();
  }
}

export interface Terminal {
  readonly pid: number;
  /** Everything the terminal showed so far. */
  screen(): string;
  /** Resolves once the screen (after `from`) matches; rejects if the program exits first. */
  until(pattern: RegExp | string, from?: number): Promise<string>;
  type(text: string): void;
  resize(cols: number, rows: number): void;
  /** The terminal's modes now (tcgetattr of the master: the pair shares them). */
  modes(): Buffer;
  /** The program's exit: { code, signal } as numbers. */
  readonly exited: Promise<{ code: number | null; signal: number | null }>;
  close(): void;
}

export function runInTerminal(file: string, args: readonly string[], size: { cols: number; rows: number }, env: NodeJS.ProcessEnv = process.env): Terminal {
  const b = ptyBinding();
  const environment = Object.entries({ ...env, TERM: 'xterm-256color' })
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  const { pid, master } = b.ptySpawn({ file, args: [file, ...args], env: environment, cols: size.cols, rows: size.rows });
  let text = '';
  let done = false;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  const stream: FdStream = new b.FdStream(master, { readSize: 65536 }, {
    onData: (chunk: Buffer) => {
      text += chunk.toString('utf8');
      wake();
    },
    onError: () => wake(), // EIO: the last slave fd closed
  });
  stream.readStart();
  let lastModes: Buffer | undefined;
  const exited = new Promise<{ code: number | null; signal: number | null }>((resolve) => {
    new b.PidWatcher(pid, (r) => {
      done = true;
      wake();
      resolve({ code: r.code ?? null, signal: r.signal ?? null });
    });
  });
  return {
    pid,
    screen: () => text,
    until: async (pattern, from = 0) => {
      for (;;) {
        const rest = text.slice(from);
        const hit = typeof pattern === 'string' ? rest.includes(pattern) : pattern.test(rest);
        if (hit) return rest;
        if (done) throw new Error(`the program exited before ${String(pattern)} showed; the screen:\n${text}`);
        await new Promise<void>((resolve) => {
          const w = (): void => {
            waiters.delete(w);
            resolve();
          };
          waiters.add(w);
        });
      }
    },
    type: (input) => {
      stream.write(Buffer.from(input, 'utf8'), () => undefined);
    },
    resize: (cols, rows) => b.ptyResize(master, cols, rows),
    modes: () => {
      lastModes = b.tcgetattr(stream.fd);
      return lastModes;
    },
    exited,
    close: () => stream.close(),
  };
}
