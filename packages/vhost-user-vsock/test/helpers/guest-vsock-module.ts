import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheRoot } from '@vmlink/testvm';

const MODULE = 'vmw_vsock_virtio_transport.ko';

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve();
    });
  });
}

/**
 * The guest kernel's `vmw_vsock_virtio_transport.ko` (testvm does not load it yet),
 * fetched from the same Debian package testvm boots (`apt-get download`, one file
 * extracted) and cached next to testvm's cache. Copied into `dir`; returns its path.
 */
export async function provideGuestVsockModule(release: string, dir: string): Promise<string> {
  const cached = join(cacheRoot(), 'vhost-user-vsock', release, MODULE);
  if (!(await stat(cached).catch(() => undefined))) {
    const work = await mkdtemp(join(cacheRoot(), 'vhost-user-vsock-dl-'));
    try {
      await run('apt-get', ['download', `linux-image-${release}`], work);
      const deb = (await readdir(work)).find((f) => f.endsWith('.deb'));
      if (deb === undefined) throw new Error(`apt-get download linux-image-${release} gave no .deb`);
      await run('sh', ['-c', `dpkg-deb --fsys-tarfile '${deb}' | tar -x --wildcards '*/${MODULE}'`], work);
      await mkdir(join(cacheRoot(), 'vhost-user-vsock', release), { recursive: true });
      await copyFile(join(work, 'lib', 'modules', release, 'kernel', 'net', 'vmw_vsock', MODULE), cached);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  const target = join(dir, MODULE);
  await copyFile(cached, target);
  return target;
}
