import { VmlinkError } from './errors.js';

/** The oldest Node.js line vmlink supports (package.json `engines`), and CI proves. */
export const MIN_NODE_MAJOR = 20;

/**
 * Throws ERR_VMLINK_UNSUPPORTED_NODE on a Node.js line older than MIN_NODE_MAJOR: a clear
 * error at load instead of a crash somewhere later (an API that line lacks).
 */
export function assertSupportedNode(version: string = process.versions.node): void {
  const major = Number.parseInt(version, 10);
  if (!(major >= MIN_NODE_MAJOR)) {
    throw new VmlinkError(
      'ERR_VMLINK_UNSUPPORTED_NODE',
      `vmlink needs Node.js >= ${MIN_NODE_MAJOR} (CI runs 20 and proves 22, 24 and 26 with scripts/node-lines.mjs); this is Node.js ${version}`,
    );
  }
}
