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
