// Types and contract of src/pty: pseudo-terminals for interactive exec. Mechanism only:
// what to run, sizes, limits and when to kill are decided in TypeScript (vmlink-guest's
// exec/pty-command.ts). See the comment at the top of src/pty/pty_module.cc.

/** How a watched child ended: `code` or `signal` (a number), or the waitid error. */
export interface PidExit {
  readonly code?: number | null;
  readonly signal?: number | null;
  readonly error?: NodeJS.ErrnoException;
}

/** Reaps one child through its pidfd (libuv's SIGCHLD handling is left alone). */
export interface PidWatcher {
  /** Stops watching (the child is not reaped then). */
  close(): void;
  ref(): void;
  unref(): void;
  readonly done: boolean;
}

export interface PtyBinding {
  /** A master/slave pair, both close-on-exec, neither our controlling terminal. */
  ptyOpen(cols: number, rows: number): { master: number; slave: number; path: string };
  /**
   * Runs `file` (no PATH search; args[0] is argv[0]) in a new session whose controlling
   * terminal and stdio are a new pty's slave; signal dispositions and mask reset.
   */
  ptySpawn(options: { file: string; args: readonly string[]; env: readonly string[]; cwd?: string; cols: number; rows: number }): { pid: number; master: number };
  /** TIOCSWINSZ: the terminal's foreground group gets SIGWINCH. */
  ptyResize(fd: number, cols: number, rows: number): void;
  /** TIOCGWINSZ. */
  ptyGetSize(fd: number): { cols: number; rows: number };
  /** The raw termios bytes of a terminal fd. */
  tcgetattr(fd: number): Buffer;
  /** tcsetattr(TCSADRAIN) with termios bytes as tcgetattr returned them (maybe changed). */
  tcsetattr(fd: number, modes: Buffer): void;
  /** Where the output-modes field sits in those bytes, and its flag values (the host's libc). */
  readonly termiosLayout: { readonly size: number; readonly oflagOffset: number; readonly OPOST: number; readonly ONLCR: number };
  PidWatcher: new (pid: number, onExit: (result: PidExit) => void) => PidWatcher;
}
