import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { buildOnce, touchAndPrune } from './cache.js';
import { writeCpio, type CpioEntry } from './cpio.js';
import { readAsset } from './assets.js';
import { findExecutable, GuestTree } from './host-files.js';
import type { GuestKernel } from './kernel.js';
import type { Userland } from './userland.js';
import { OPTIONAL_GUEST_MODULES } from './kernel-modules.js';
import { testVmError, TestVmErrorCode } from './errors.js';
import { execHost } from './host-exec.js';

/** Bumped whenever the layout below changes in a way the inputs do not show. */
const LAYOUT_VERSION = 3;

/** How many initramfs builds the cache keeps (most recently used first). */
const KEEP_INITRAMFS = 6;

export const GUEST_MODULE_DIR = '/opt/vmlink-testvm/modules';
export const GUEST_RUNNER = '/opt/vmlink-testvm/runner.cjs';

export interface InitramfsInputs {
  kernel: GuestKernel;
  /**
   * Absolute host path of the node binary packed as /usr/bin/node (and, for a guest of the
   * host's architecture, at its own path with the host libraries it loads).
   */
  node: string;
  /** Host programs resolved to absolute paths (guests of the host's architecture). */
  programs: readonly string[];
  /** A foreign guest's root (Debian packages of its architecture), instead of host files. */
  userland?: Userland;
}

async function busyboxPath(): Promise<string> {
  for (const candidate of ['/bin/busybox', '/usr/bin/busybox']) {
    const found = await findExecutable(candidate);
    if (found !== undefined) return found;
  }
  throw testVmError(TestVmErrorCode.BUILD_FAILED, 'busybox is missing on this host: apt-get install -y busybox-static');
}

const ETC_FILES: Record<string, string> = {
  '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  '/etc/group': 'root:x:0:\nnogroup:x:65534:\n',
  '/etc/hosts': '127.0.0.1\tlocalhost vmlink-testvm\n::1\tlocalhost ip6-localhost\n',
  '/etc/nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files\n',
  '/etc/hostname': 'vmlink-testvm\n',
};

/** Busybox's applets as `/usr/bin/x`-style paths; a foreign guest's Debian busybox has the same list as the host's. */
async function busyboxApplets(hostBusybox: string): Promise<string[]> {
  const applets = await execHost(hostBusybox, ['--list-full']);
  return applets.stdout.split('\n').filter((l) => l !== '');
}

async function buildTree(inputs: InitramfsInputs): Promise<GuestTree> {
  const tree = new GuestTree();
  const hostBusybox = await busyboxPath();
  let guestBusybox = hostBusybox;
  if (inputs.userland === undefined) {
    await tree.addHostBinary(inputs.node);
    if (!tree.has('/usr/bin/node')) tree.addSymlink('/usr/bin/node', inputs.node);
    for (const program of inputs.programs) await tree.addHostBinary(program);
    await tree.addHostFile(hostBusybox);
  } else {
    // Its own libc, busybox and programs at their Debian paths; node from npm.
    await tree.addRootTree(inputs.userland.root);
    await tree.addFileAs('/usr/bin/node', inputs.node, 0o755);
    guestBusybox = '/bin/busybox';
    if (!tree.has(guestBusybox)) throw testVmError(TestVmErrorCode.BUILD_FAILED, `the ${inputs.userland.key} userland has no ${guestBusybox}`);
  }
  for (const applet of await busyboxApplets(hostBusybox)) {
    // Programs copied in win over busybox's applets of the same name.
    if (!tree.has(`/${applet}`)) tree.addSymlink(`/${applet}`, guestBusybox);
  }

  for (const dir of ['/proc', '/sys', '/dev', '/tmp', '/run', '/root', '/mnt', '/var/tmp', '/usr/local/bin']) tree.mkdirp(dir);
  tree.addCharDevice('/dev/console', 5, 1);
  tree.addCharDevice('/dev/null', 1, 3, 0o666);
  for (const [path, content] of Object.entries(ETC_FILES)) tree.addData(path, content);

  tree.addData('/init', await readAsset('guest-init.sh'), 0o755);
  tree.addData(GUEST_RUNNER, await readAsset('guest-runner.cjs'));
  tree.addData(`${GUEST_MODULE_DIR}/order`, inputs.kernel.modules.join('\n') + '\n');
  tree.addData(`${GUEST_MODULE_DIR}/optional`, OPTIONAL_GUEST_MODULES.join('\n') + '\n');
  for (const name of inputs.kernel.modules) {
    await tree.addFileAs(`${GUEST_MODULE_DIR}/${name}.ko`, join(inputs.kernel.dir, 'modules', `${name}.ko`));
  }
  return tree;
}

/** Parents before children, as the kernel's unpacker needs. */
function toEntries(tree: GuestTree): CpioEntry[] {
  const paths = [...tree.nodes.keys()].filter((p) => p !== '/').sort();
  return paths.map((path): CpioEntry => {
    const node = tree.nodes.get(path);
    if (node === undefined) throw new Error(`guest tree lost ${path}`);
    switch (node.type) {
      case 'dir':
        return { type: 'dir', path, mode: node.mode };
      case 'file':
        return { type: 'file', path, mode: node.mode, source: node.source };
      case 'data':
        return { type: 'data', path, mode: node.mode, data: node.data };
      case 'symlink':
        return { type: 'symlink', path, target: node.target };
      case 'chardev':
        return { type: 'chardev', path, mode: node.mode, major: node.major, minor: node.minor };
    }
  });
}

/** A digest of everything that goes into the archive: file identities, contents of generated files. */
function treeKey(tree: GuestTree, kernel: GuestKernel): string {
  const hash = createHash('sha256');
  hash.update(`layout ${LAYOUT_VERSION}\nkernel ${kernel.key}\n`);
  for (const [path, node] of [...tree.nodes.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    switch (node.type) {
      case 'file':
        hash.update(`F ${path} ${node.mode} ${node.size} ${node.mtimeMs} ${node.ino}\n`);
        break;
      case 'data':
        hash.update(`D ${path} ${node.mode} `).update(node.data).update('\n');
        break;
      case 'symlink':
        hash.update(`L ${path} ${node.target}\n`);
        break;
      case 'dir':
        hash.update(`d ${path} ${node.mode}\n`);
        break;
      case 'chardev':
        hash.update(`c ${path} ${node.major}:${node.minor}\n`);
        break;
    }
  }
  return hash.digest('hex').slice(0, 24);
}

export interface Initramfs {
  path: string;
  key: string;
}

/** The guest's initramfs, from the cache when its inputs are unchanged. */
export async function getInitramfs(cache: string, inputs: InitramfsInputs): Promise<Initramfs> {
  const tree = await buildTree(inputs);
  const key = treeKey(tree, inputs.kernel);
  const dir = join(cache, 'initramfs', key);
  await buildOnce(dir, async (tmp) => {
    const sizes = new Map<string, number>();
    for (const node of tree.nodes.values()) if (node.type === 'file') sizes.set(node.source, node.size);
    await writeCpio(join(tmp, 'initramfs.cpio'), toEntries(tree), async (source) => sizes.get(source) ?? 0);
  });
  await touchAndPrune(dir, KEEP_INITRAMFS);
  return { path: join(dir, 'initramfs.cpio'), key };
}
