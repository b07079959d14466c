import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/**
 * Files shipped next to `src/` and `dist/` in `assets/` (the guest's init and runner,
 * the QEMU supervisor). `../assets` is right from both folders.
 */
export function assetPath(name: string): string {
  return fileURLToPath(new URL(`../assets/${name}`, import.meta.url));
}

export function readAsset(name: string): Promise<string> {
  return readFile(assetPath(name), 'utf8');
}
