// The stall suite's C floor: what the machine itself takes from a thread that always wants
// to run (lib/hiccup.c), measured in the same run as the engines' loop delay.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('./hiccup.c', import.meta.url));

/**
 * Builds lib/hiccup.c once (cached in the temp dir by its content) and returns
 * `run(seconds)` -> { cpus: [{ cpu, maxGapMs, gapsOver1ms }], maxGapMs }, or a string
 * saying why there is no floor (no C compiler).
 */
export function hiccupMeter() {
  const text = readFileSync(source);
  const binary = join(tmpdir(), `vmlink-bench-hiccup-${createHash('sha256').update(text).digest('hex').slice(0, 12)}`);
  if (!existsSync(binary)) {
    try {
      execFileSync('cc', ['-O2', '-pthread', '-o', binary, source], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      return `no C floor: cc failed (${error.code ?? error.message})`;
    }
  }
  return (seconds) => {
    const { cpus } = JSON.parse(execFileSync(binary, [String(seconds)], { encoding: 'utf8' }));
    return { cpus, maxGapMs: Math.max(...cpus.map((c) => c.maxGapMs)) };
  };
}
