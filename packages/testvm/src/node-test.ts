import type { Vm } from './vm.js';

export interface GuestNodeTestOptions {
  /** Guest working directory; default: the test file's folder. */
  cwd?: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Default 120 000. */
  timeoutMs?: number;
  /** Extra `node` flags placed before `--test`. */
  nodeArgs?: readonly string[];
}

export interface GuestNodeTestResult {
  exitCode: number;
  /** stdout and stderr of `node --test --test-reporter=spec`, ready for a failure message. */
  output: string;
}

/**
 * Runs a `node:test` file in the guest (the path must be visible there, e.g. inside a
 * share) and returns its exit code and spec-reporter output.
 */
export async function runGuestNodeTest(vm: Vm, file: string, options: GuestNodeTestOptions = {}): Promise<GuestNodeTestResult> {
  const cwd = options.cwd ?? file.slice(0, Math.max(1, file.lastIndexOf('/')));
  const result = await vm.run('node', [...(options.nodeArgs ?? []), '--test', '--test-reporter=spec', file], {
    cwd,
    env: options.env,
    timeoutMs: options.timeoutMs ?? 120_000,
  });
  const output = [result.stdout, result.stderr].filter((s) => s !== '').join('\n--- stderr ---\n');
  return { exitCode: result.exitCode, output };
}
