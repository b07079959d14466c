import { constants, readFileSync, writeFileSync } from 'node:fs';
import { expect, it, type TestContext } from 'vitest';
import { allocAligned, O_DIRECT, type AioFile } from '@vmlink/aio';
import { patternBytes } from './helpers.js';
import type { AioSuiteContext } from './setup.js';

/** O_DIRECT: alignment reported, aligned round trips, misaligned requests rejected or routed. */
export function directTests(ctx: AioSuiteContext): void {
  function skipUnlessDirect(test: TestContext): void {
    if (!ctx.backend().capabilities.direct) test.skip(`${ctx.backend().name} does not declare the 'direct' capability`);
    const reason = ctx.directUnsupported();
    if (reason !== undefined) test.skip(reason);
  }

  async function withDirectFile(name: string, size: number, body: (file: AioFile, data: Buffer) => Promise<void>): Promise<void> {
    const path = ctx.path(name);
    const data = patternBytes(size, size);
    writeFileSync(path, data);
    const file = await ctx.backend().open(path, constants.O_RDWR | O_DIRECT);
    try {
      await body(file, data);
    } finally {
      await file.close();
    }
  }

  it('reports direct=true and a power-of-two alignment for an O_DIRECT file', async (test) => {
    skipUnlessDirect(test);
    await withDirectFile('direct-props', 8192, async (file) => {
      expect(file.direct).toBe(true);
      for (const value of [file.alignment.memory, file.alignment.offset, file.alignment.length]) {
        expect(value).toBeGreaterThanOrEqual(1);
        expect(value & (value - 1)).toBe(0);
      }
    });
  });

  it('aligned O_DIRECT round trips at several offsets', async (test) => {
    skipUnlessDirect(test);
    await withDirectFile('direct-round-trip', 1 << 20, async (file, original) => {
      const unit = Math.max(file.alignment.offset, file.alignment.length, 4096);
      const expected = Buffer.from(original);
      for (const [index, blocks] of [0, 1, 7, 64, 255].entries()) {
        const offset = blocks * unit;
        const data = patternBytes(unit * (index + 1), 100 + index);
        const out = allocAligned(data.length, file.alignment.memory);
        data.copy(out);
        await expect(file.write(out, offset)).resolves.toBe(data.length);
        data.copy(expected, offset);
        const back = allocAligned(data.length, file.alignment.memory);
        await expect(file.read(back, BigInt(offset))).resolves.toBe(data.length);
        expect(back.equals(data)).toBe(true);
      }
      const whole = allocAligned(1 << 20, file.alignment.memory);
      await expect(file.readv([whole.subarray(0, 1 << 19), whole.subarray(1 << 19)], 0)).resolves.toBe(1 << 20);
      expect(whole.equals(expected)).toBe(true);
    });
  });

  it('a short O_DIRECT read at EOF returns what exists', async (test) => {
    skipUnlessDirect(test);
    await withDirectFile('direct-eof', 8192, async (file, data) => {
      const buf = allocAligned(16384, file.alignment.memory);
      await expect(file.read(buf, 4096)).resolves.toBe(4096);
      expect(buf.subarray(0, 4096).equals(data.subarray(4096))).toBe(true);
      await expect(file.read(buf, 8192)).resolves.toBe(0);
    });
  });

  it('misaligned O_DIRECT requests: EINVAL naming the alignment, or routed and correct', async (test) => {
    skipUnlessDirect(test);
    const backend = ctx.backend();
    const mode = backend.capabilities.misalignedDirect ?? 'reject';
    await withDirectFile('direct-misaligned', 65536, async (file, data) => {
      if (file.alignment.offset <= 1 && file.alignment.memory <= 1) test.skip('this file system imposes no O_DIRECT alignment');
      const aligned = allocAligned(8192, file.alignment.memory);
      const cases: [label: string, buffer: Buffer, position: number][] = [
        ['position 100', aligned.subarray(0, 4096), 100],
        ['length 1000', aligned.subarray(0, 1000), 0],
        ['buffer at +1', aligned.subarray(1, 4097), 4096],
      ];
      const before = backend.stats().alignmentRejections;
      for (const [label, buffer, position] of cases) {
        if (mode === 'reject') {
          await expect(file.read(buffer, position), label).rejects.toMatchObject({
            code: 'EINVAL',
            message: expect.stringMatching(new RegExp(`${file.alignment.offset}|${file.alignment.memory}`)),
          });
        } else {
          await expect(file.read(buffer, position), label).resolves.toBe(buffer.length);
          expect(buffer.equals(data.subarray(position, position + buffer.length)), label).toBe(true);
        }
      }
      if (mode === 'reject') expect(backend.stats().alignmentRejections - before).toBe(cases.length);
      // The file is unchanged and still usable.
      await expect(file.read(aligned, 0)).resolves.toBe(8192);
      expect(aligned.equals(data.subarray(0, 8192))).toBe(true);
      expect(readFileSync(file.path).equals(data)).toBe(true);
    });
  });
}
