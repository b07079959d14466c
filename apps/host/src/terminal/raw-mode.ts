import { passOutputThrough, type TermiosCalls } from './output-modes.js';

/**
 * The host terminal in raw mode for a remote PTY, and put back on every way out: the
 * normal end, an error, SIGTERM/SIGHUP/SIGQUIT, a lost connection, an uncaught exception,
 * process.exit. Node's tty.ReadStream.setRawMode saves the modes it found the first time
 * and restores exactly those; restoring twice is harmless. Node's raw mode leaves output
 * processing on: that part is ours (output-modes.ts).
 */
export interface RawTerminal {
  /** Puts the modes back (idempotent) and removes the handlers. */
  restore(): void;
}

/** The parts of process.stdin this needs (a tty.ReadStream). */
export interface RawCapable {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

const FATAL_SIGNALS = ['SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

export interface RawOptions {
  /** The terminal the remote bytes are written to (stdout's fd): its output processing goes off. */
  readonly outputFd?: number | undefined;
  /** The addon's termios calls; without them output processing stays as Node's raw mode has it. */
  readonly termios?: TermiosCalls | undefined;
}

/**
 * Enters raw mode: no echo, no line editing, no ISIG (Ctrl-C, Ctrl-Z, Ctrl-\ are bytes for
 * the remote terminal), no output processing. `onFatalSignal` runs after the terminal is
 * restored, for a signal that ends us (it should end the session and exit 128+N).
 */
export function enterRawMode(input: RawCapable, onFatalSignal: (signal: (typeof FATAL_SIGNALS)[number]) => void, options: RawOptions = {}): RawTerminal {
  if (!input.isTTY || typeof input.setRawMode !== 'function') {
    throw Object.assign(new Error('a terminal session (-t, shell) needs a terminal on stdin; use exec without -t for pipes'), { code: 'ERR_VMLINK_USAGE' });
  }
  input.setRawMode(true);
  // After Node's raw mode: on the same terminal, setRawMode(false) then restores what it found first.
  const restoreOutput = passOutputThrough(options.outputFd, options.termios);
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    restoreOutput();
    try {
      input.setRawMode?.(false);
    } catch {
      // The terminal is gone (EIO, EBADF): nothing left to restore.
    }
    for (const [signal, handler] of handlers) process.off(signal, handler);
    process.off('exit', restore);
  };
  const handlers = FATAL_SIGNALS.map((signal) => {
    const handler = (): void => {
      restore();
      onFatalSignal(signal);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  // process.exit() and uncaught exceptions end here too (Node also resets stdio's modes at exit).
  process.on('exit', restore);
  return { restore };
}
