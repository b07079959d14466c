import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** This package's version, from its package.json (`../package.json` from both src/ and dist/). */
export function packageVersion(): string {
  const path = fileURLToPath(new URL('../package.json', import.meta.url));
  const { version } = JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown };
  return typeof version === 'string' ? version : 'unknown';
}
