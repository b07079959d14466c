import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/**
 * A node child process running `script` (CommonJS, `-e`) under `sh -c 'umask U; ...'`;
 * resolves with the child and its first stdout line once it prints one.
 */
export async function startChild(script: string, umask = '022'): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn('/bin/sh', ['-c', `umask ${umask}; exec "$0" -e "$1"`, process.execPath, script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`child exited with ${code} before printing`);
    }),
  ])) as [string];
  return { child, line };
}

/** SIGKILL a child and wait until it is gone. */
export async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** A socket file left behind by a SIGKILLed server (what a crashed agent leaves). */
export async function makeStaleSocket(path: string): Promise<void> {
  const { child } = await startChild(
    `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
  );
  await killChild(child);
}
