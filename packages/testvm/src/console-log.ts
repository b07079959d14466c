import { open } from 'node:fs/promises';

/** The last `maxBytes` of a log file as text, '' when it cannot be read. */
export async function readTail(path: string, maxBytes = 4096): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, size - length);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    await handle?.close();
  }
}
