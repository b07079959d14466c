import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Paths of the built apps, as seen from apps/host/demo/dist (the demo's own build, not shipped in the vmlink package). */
export const HOST_CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const GUEST_CLI = path.resolve(path.dirname(HOST_CLI), '../../guest/dist/cli.js');
export const REPO_ROOT = path.resolve(path.dirname(HOST_CLI), '../../..');

const useColor = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined;
const paint = (code: string, text: string): string => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text);
export const bold = (t: string): string => paint('1', t);
export const dim = (t: string): string => paint('2', t);
export const green = (t: string): string => paint('32', t);
export const red = (t: string): string => paint('31', t);

/** Counts what went as expected; the demo's exit code comes from here. */
export class Story {
  private step = 0;
  readonly failures: string[] = [];

  heading(title: string): void {
    this.step += 1;
    process.stdout.write(`\n${bold(`== ${this.step}. ${title}`)}\n`);
  }

  say(text: string): void {
    process.stdout.write(`${text}\n`);
  }

  check(ok: boolean, what: string): void {
    process.stdout.write(`${ok ? green('ok') : red('FAILED')}  ${what}\n`);
    if (!ok) this.failures.push(what);
  }

  /** Runs the real CLI as a child, output straight to this terminal; checks its exit code. */
  async cli(args: readonly string[], expectedExit: number, what: string): Promise<number> {
    return (await this.timedCli(args, expectedExit, what)).code;
  }

  /** As `cli`, and also says how long the command took (start to exit, as a user waits). */
  async timedCli(args: readonly string[], expectedExit: number, what: string): Promise<{ code: number; ms: number }> {
    process.stdout.write(`${dim('$')} vmlink ${args.map(quote).join(' ')}\n`);
    const started = performance.now();
    const code = await runChild(process.execPath, [HOST_CLI, ...args]);
    const ms = performance.now() - started;
    this.check(code === expectedExit, `${what} (exit code ${code}${code === expectedExit ? '' : `, expected ${expectedExit}`})`);
    return { code, ms };
  }

  summary(): number {
    process.stdout.write('\n');
    if (this.failures.length === 0) {
      process.stdout.write(`${green(bold('demo: every step did what it should'))}\n`);
      return 0;
    }
    process.stdout.write(`${red(bold(`demo: ${this.failures.length} step(s) failed:`))}\n${this.failures.map((f) => `  - ${f}`).join('\n')}\n`);
    return 1;
  }
}

/** `64 MiB in 3.2 s (20.0 MiB/s)`: the CLI's whole run, connect and SHA-256 included. */
export function rate(bytes: number, ms: number): string {
  const mib = bytes / (1024 * 1024);
  return `${mib >= 1 ? `${mib.toFixed(mib % 1 === 0 ? 0 : 1)} MiB` : `${bytes} B`} in ${(ms / 1000).toFixed(1)} s (${(mib / (ms / 1000)).toFixed(1)} MiB/s, connect and SHA-256 included)`;
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function runChild(command: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit' });
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Prefixes each line a child writes, so the agent's request log reads apart from the CLI;
 * `show` drops lines the story does not need (connection chatter). Resolves `untilLine`
 * when a line containing it arrives.
 */
export function prefixLines(
  child: ChildProcess,
  prefix: string,
  show: (line: string) => boolean = () => true,
  untilLine?: string,
): Promise<void> {
  return new Promise((resolve) => {
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (show(line)) process.stdout.write(`${dim(`${prefix} | ${line}`)}\n`);
          if (untilLine !== undefined && line.includes(untilLine)) resolve();
        }
      });
    }
    child.once('exit', () => resolve());
  });
}

export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
