import { spawn } from 'node:child_process';

/** How a child process builds the transport under test: `(await import(module))[factory](...args)`. */
export interface ChildTransportSpec {
  /** Module specifier or file URL, resolved from `cwd`. */
  readonly module: string;
  /** Name of the exported factory, e.g. `unix`. */
  readonly factory: string;
  /** JSON-serialisable factory arguments. */
  readonly args?: readonly unknown[];
  /** Where the child resolves `module` from (default: this process's cwd). */
  readonly cwd?: string;
}

export type ChildMode = 'dial-echo-close' | 'dial-unref' | 'listen-close' | 'listen-unref';

/**
 * The child does its one job and then simply returns: it must exit on its own. If a
 * handle leaked, the event loop stays alive and the parent's deadline fails the test.
 */
const CHILD_SCRIPT = `
const { spec, mode, address } = JSON.parse(process.env.VMLINK_COMPLIANCE_CHILD);
const mod = await import(spec.module);
const transport = mod[spec.factory](...(spec.args ?? []));
if (mode === 'dial-echo-close') {
  const c = await transport.dial(address);
  c.write('echo\\nping');
  const got = await new Promise((resolve, reject) => {
    let data = '';
    c.on('data', (d) => { data += d; if (data.length >= 4) resolve(data); });
    c.on('error', reject);
  });
  if (got !== 'ping') throw new Error('echo gave ' + JSON.stringify(got));
  c.end();
} else if (mode === 'dial-unref') {
  const c = await transport.dial(address);
  c.write('echo\\n');
  c.unref();
} else if (mode === 'listen-close') {
  const l = await transport.listen(address);
  await l.close();
} else if (mode === 'listen-unref') {
  const l = await transport.listen(address);
  l.unref();
}
process.stdout.write('child-done\\n');
`;

export interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True if the child had to be killed because it did not exit on its own. */
  readonly killed: boolean;
}

export function runChild(spec: ChildTransportSpec, mode: ChildMode, address: string, deadlineMs: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD_SCRIPT], {
      cwd: spec.cwd ?? process.cwd(),
      env: { ...process.env, VMLINK_COMPLIANCE_CHILD: JSON.stringify({ spec, mode, address }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const deadline = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, deadlineMs);
    child.once('error', (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(deadline);
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}
