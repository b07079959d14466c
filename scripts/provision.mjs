#!/usr/bin/env node
// Makes sure the Debian packages the tests, demos and benchmarks need are installed, so
// that `npm ci && npm test` works on a fresh Debian machine with nothing run before it.
// As root with apt-get: installs what is missing. Otherwise: fails at once with the exact
// command to run. .ci/run calls this too: the package list has one home.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Why each package is needed (the guest, its peers, the AIO tests and benchmarks, the addon build). */
export const DEBIAN_PACKAGES = {
  'qemu-system-x86': 'boots the test guest (QEMU TCG)',
  'qemu-system-data': 'qboot firmware for fast guest boots',
  'busybox-static': "the guest's userland",
  cpio: "packs the guest's initramfs",
  socat: 'a vsock/virtio-serial peer no one here wrote',
  fio: 'the AIO benchmarks baseline',
  e2fsprogs: 'a small ext4 image for the ENOSPC tests',
  python3: 'node-gyp (the addon build)',
  make: 'node-gyp (the addon build)',
  'g++': 'node-gyp (the addon build)',
};

function installed(pkg) {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.includes('install ok installed');
}

function main() {
  if (process.platform !== 'linux' || !existsSync('/usr/bin/dpkg-query')) {
    console.error('provision: not a Debian-family Linux machine; install the equivalents of: ' + Object.keys(DEBIAN_PACKAGES).join(' '));
    process.exit(1);
  }
  const missing = Object.keys(DEBIAN_PACKAGES).filter((pkg) => !installed(pkg));
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    console.error(`provision: missing Debian packages: ${missing.join(', ')}\nRun as root:\n  ${command}`);
    process.exit(1);
  }
  console.log(`provision: installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env });
}

main();
