import { open, type FileHandle } from 'node:fs/promises';

/** One member of a newc cpio archive (the initramfs format the kernel unpacks). */
export type CpioEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; source: string }
  | { type: 'data'; path: string; mode: number; data: Buffer }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function header(ino: number, mode: number, size: number, name: string, rdev: [number, number] = [0, 0]): Buffer {
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'latin1');
  return Buffer.concat([head, nameBytes, pad4(head.length + nameBytes.length)]);
}

async function copyInto(out: FileHandle, source: string): Promise<number> {
  const input = await open(source, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    let total = 0;
    for (;;) {
      const { bytesRead } = await input.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return total;
      await out.write(buf, 0, bytesRead);
      total += bytesRead;
    }
  } finally {
    await input.close();
  }
}

/**
 * Writes `entries` as an uncompressed newc archive owned by root (no root needed to
 * make device nodes this way). Uncompressed because decompressing ~100 MB under TCG
 * costs more than reading it. Parents must come before their children.
 */
export async function writeCpio(path: string, entries: readonly CpioEntry[], sizeOf: (source: string) => Promise<number>): Promise<void> {
  const out = await open(path, 'w');
  try {
    let ino = 1;
    for (const entry of entries) {
      const name = entry.path.replace(/^\/+/, '');
      switch (entry.type) {
        case 'dir':
          await out.write(header(ino++, S_IFDIR | entry.mode, 0, name));
          break;
        case 'chardev':
          await out.write(header(ino++, S_IFCHR | entry.mode, 0, name, [entry.major, entry.minor]));
          break;
        case 'symlink': {
          const data = Buffer.from(entry.target);
          await out.write(Buffer.concat([header(ino++, S_IFLNK | 0o777, data.length, name), data, pad4(data.length)]));
          break;
        }
        case 'data':
          await out.write(Buffer.concat([header(ino++, S_IFREG | entry.mode, entry.data.length, name), entry.data, pad4(entry.data.length)]));
          break;
        case 'file': {
          const size = await sizeOf(entry.source);
          await out.write(header(ino++, S_IFREG | entry.mode, size, name));
          const copied = await copyInto(out, entry.source);
          if (copied !== size) throw new Error(`${entry.source} changed size while it was archived`);
          await out.write(pad4(size));
          break;
        }
      }
    }
    await out.write(header(0, 0, 0, 'TRAILER!!!'));
  } finally {
    await out.close();
  }
}
