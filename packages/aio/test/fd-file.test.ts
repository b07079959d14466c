import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FdBackend, FsFdIo, StatsRecorder, type FdIo, type OpOptions, type Position, type Settle } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-aio-fdfile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface CheckedCall {
  readonly isRead: boolean;
  readonly fd: number;
  readonly position: Position;
  readonly buffers: number;
  readonly signal: AbortSignal | undefined;
}

/**
 * The fs reference's FdIo (real reads and writes of a real file) plus a transferChecked
 * that records its calls; readv/writev count theirs. `fail` makes transferChecked report
 * an error through settle, `throwIn` makes it throw.
 */
class RecordingIo implements FdIo {
  readonly name = 'recording';
  readonly fs = new FsFdIo();
  readonly checked: CheckedCall[] = [];
  promiseCalls = 0;
  fail: Error | undefined;
  throwIn: Error | undefined;

  readv(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    this.promiseCalls++;
    return this.fs.readv(fd, buffers, position, options);
  }

  writev(fd: number, buffers: readonly Uint8Array[], position: Position, options?: OpOptions): Promise<number> {
    this.promiseCalls++;
    return this.fs.writev(fd, buffers, position, options);
  }

  fsync(fd: number, options?: OpOptions): Promise<void> {
    return this.fs.fsync(fd, options);
  }

  fdatasync(fd: number, options?: OpOptions): Promise<void> {
    return this.fs.fdatasync(fd, options);
  }

  transferChecked(isRead: boolean, fd: number, buffers: readonly Uint8Array[], position: Position, signal: AbortSignal | undefined, settle: Settle<number>): void {
    this.checked.push({ isRead, fd, position, buffers: buffers.length, signal });
    if (this.throwIn !== undefined) throw this.throwIn;
    if (this.fail !== undefined) {
      settle.reject(this.fail);
      return;
    }
    const run = isRead ? this.fs.readv(fd, buffers, position) : this.fs.writev(fd, buffers, position);
    run.then(settle.resolve, settle.reject);
  }
}

function backendOver(io: FdIo): FdBackend {
  return new FdBackend({ name: io.name, capabilities: { direct: false, nowait: false, batch: false, cancel: false, misalignedDirect: 'reject' }, io, recorder: new StatsRecorder() });
}

/** A real file of `size` bytes of `fill` at `name`, opened with `flags` on an FdBackend over a RecordingIo. */
async function openRecorded(name: string, size: number, fill: number, flags: string) {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(size, fill));
  const io = new RecordingIo();
  const backend = backendOver(io);
  const file = await backend.open(path, flags);
  return { path, io, backend, file };
}

describe('FdFile over an FdIo with transferChecked (a real file)', () => {
  it('sends reads and writes through transferChecked with the checked arguments, never through readv/writev', async () => {
    const { path, io, backend, file } = await openRecorded('checked.bin', 8192, 1, 'r+');
    const controller = new AbortController();
    expect(await file.write(Buffer.alloc(4096, 7), 4096, { signal: controller.signal })).toBe(4096);
    const into = Buffer.alloc(4096);
    expect(await file.read(into, 4096n)).toBe(4096);
    expect(into.every((byte) => byte === 7)).toBe(true);
    expect(await file.readv([Buffer.alloc(100), Buffer.alloc(100)], 0)).toBe(200);
    expect(io.promiseCalls).toBe(0);
    expect(io.checked).toEqual([
      { isRead: false, fd: file.fd, position: 4096, buffers: 1, signal: controller.signal },
      { isRead: true, fd: file.fd, position: 4096n, buffers: 1, signal: undefined },
      { isRead: true, fd: file.fd, position: 0, buffers: 2, signal: undefined },
    ]);
    await backend.close();
    expect(readFileSync(path).subarray(4096).every((byte) => byte === 7)).toBe(true);
  });

  it('checks before it calls: bad arguments, an aborted signal and a closed file never reach the FdIo', async () => {
    const { io, backend, file } = await openRecorded('refused.bin', 4096, 0, 'r');
    await expect(file.read(Buffer.alloc(16), -1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(file.read('not a buffer' as unknown as Buffer, 0)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(file.read(Buffer.alloc(16), 0, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    await file.close();
    await expect(file.read(Buffer.alloc(16), 0)).rejects.toMatchObject({ code: 'EBADF' });
    expect(io.checked).toEqual([]);
    await backend.close();
  });

  it("an error through settle, or thrown, rejects that request (a system error gets the file's path); the file stays usable and closes", async () => {
    const { path, io, backend, file } = await openRecorded('errors.bin', 4096, 3, 'r');
    io.fail = Object.assign(new Error('EIO: i/o error'), { code: 'EIO', errno: -5, syscall: 'preadv2' });
    await expect(file.read(Buffer.alloc(16), 0)).rejects.toMatchObject({ code: 'EIO', syscall: 'preadv2', path });
    io.fail = undefined;
    io.throwIn = Object.assign(new Error('EINVAL: thrown'), { code: 'EINVAL', errno: -22, syscall: 'preadv2' });
    await expect(file.read(Buffer.alloc(16), 0)).rejects.toMatchObject({ code: 'EINVAL', syscall: 'preadv2', path });
    io.throwIn = undefined;
    const into = Buffer.alloc(16);
    expect(await file.read(into, 0)).toBe(16);
    expect(into.every((byte) => byte === 3)).toBe(true);
    // close() waits for nothing: every request above settled exactly once.
    await file.close();
    await backend.close();
  });

  it('an FdIo without transferChecked still serves through readv/writev', async () => {
    const path = join(dir, 'plain.bin');
    writeFileSync(path, Buffer.alloc(4096, 5));
    const io = new RecordingIo();
    const plain: FdIo = {
      name: 'plain',
      readv: (...args) => io.readv(...args),
      writev: (...args) => io.writev(...args),
      fsync: (...args) => io.fsync(...args),
      fdatasync: (...args) => io.fdatasync(...args),
    };
    const backend = backendOver(plain);
    const file = await backend.open(path, 'r+');
    expect(await file.write(Buffer.alloc(16, 9), 0)).toBe(16);
    expect(await file.read(Buffer.alloc(16), 0)).toBe(16);
    expect(io.promiseCalls).toBe(2);
    expect(io.checked).toEqual([]);
    await backend.close();
  });
});
