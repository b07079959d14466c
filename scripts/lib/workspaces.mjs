// The repository's workspaces, read from the root package.json (one home for the list):
// which ones are published, where they live, what their manifest says.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Reads a JSON file relative to the repository root. */
export function readJson(relativePath) {
  return JSON.parse(readFileSync(join(ROOT, relativePath), 'utf8'));
}

/** Every workspace as { dir (relative to the root), pkg (its package.json) }, in a stable order. */
export function workspaces() {
  const patterns = readJson('package.json').workspaces;
  const dirs = [];
  for (const pattern of patterns) {
    if (pattern.endsWith('/*')) {
      const parent = pattern.slice(0, -2);
      for (const name of readdirSync(join(ROOT, parent)).sort()) dirs.push(`${parent}/${name}`);
    } else {
      dirs.push(pattern);
    }
  }
  return dirs
    .filter((dir) => existsSync(join(ROOT, dir, 'package.json')))
    .map((dir) => ({ dir, pkg: readJson(`${dir}/package.json`) }));
}

/** The workspaces npm would publish (not `private`). */
export function publishableWorkspaces() {
  return workspaces().filter(({ pkg }) => pkg.private !== true);
}
