import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root: shared into guests so fixtures (and node_modules) are visible there. */
export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
export const fixtures = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures');

/** Boots under TCG take 15-40 s on a busy 2-core machine. */
export const BOOT_TIMEOUT_MS = 180_000;

export function formatMs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The built CLI, as users run it (the root test script builds first). */
export const builtCli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `vmlink-testvm ARGS` from the repository root and collects its output. */
export function cli(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [builtCli, ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
