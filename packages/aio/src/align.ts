import { constants as bufferConstants } from 'node:buffer';
import { constants as fsConstants } from 'node:fs';
import { outOfRange, validateInteger } from '@vmlink/errors';
import { nativeBinding, tryNativeBinding } from './native.js';
import type { Alignment } from './types.js';

/** Alignment of a file opened without O_DIRECT: anything goes. */
export const NO_ALIGNMENT: Alignment = Object.freeze({ memory: 1, offset: 1, length: 1 });

/** What a direct file gets when the addon cannot tell: the largest common block size. */
const CONSERVATIVE_ALIGNMENT: Alignment = Object.freeze({ memory: 4096, offset: 4096, length: 4096 });

const MAX_ALIGNMENT = 1 << 20;

/** fs.constants.O_DIRECT where the platform has it, else 0. */
export const O_DIRECT: number = (fsConstants as { O_DIRECT?: number }).O_DIRECT ?? 0;

/** True when numeric open flags include O_DIRECT. */
export function hasDirectFlag(flags: string | number): boolean {
  return typeof flags === 'number' && O_DIRECT !== 0 && (flags & O_DIRECT) !== 0;
}

function validateAlignment(alignment: unknown): number {
  validateInteger(alignment, 'alignment', 1, MAX_ALIGNMENT);
  const value = alignment as number;
  if ((value & (value - 1)) !== 0) throw outOfRange('alignment', `a power of two <= ${MAX_ALIGNMENT}`, value);
  return value;
}

/**
 * A zero-filled Buffer of `size` bytes whose first byte sits at an address that is a
 * multiple of `alignment` (default 4096), for O_DIRECT. Node gives no such guarantee
 * (Buffer.alloc is often only 8- or 16-byte aligned), so this over-allocates and returns
 * the aligned sub-range; the addon reads the real address. Needs the addon.
 */
export function allocAligned(size: number, alignment = 4096): Buffer {
  validateAlignment(alignment);
  validateInteger(size, 'size', 0, bufferConstants.MAX_LENGTH - alignment);
  const native = nativeBinding();
  // Larger than 64 bytes, so the backing store lives off the V8 heap and never moves.
  const backing = Buffer.alloc(Math.max(size + alignment, 128));
  const misalignment = native.addressOffset(backing, alignment);
  const start = misalignment === 0 ? 0 : alignment - misalignment;
  const aligned = backing.subarray(start, start + size);
  if (native.addressOffset(aligned, alignment) !== 0) throw new Error('allocAligned: could not align the buffer');
  return aligned;
}

/** True when `view`'s first byte sits at a multiple of `alignment` (needs the addon). */
export function isAligned(view: ArrayBufferView, alignment: number): boolean {
  validateAlignment(alignment);
  return nativeBinding().addressOffset(view, alignment) === 0;
}

/**
 * The O_DIRECT alignment of an open fd: statx(STATX_DIOALIGN), else the device's logical
 * block size, else 4096. Files opened without O_DIRECT get { 1, 1, 1 }.
 */
export function alignmentOf(fd: number, direct: boolean): Alignment {
  if (!direct) return NO_ALIGNMENT;
  const native = tryNativeBinding();
  if (native === undefined) return CONSERVATIVE_ALIGNMENT;
  const { memory, offset, length } = native.dioAlignment(fd);
  return Object.freeze({ memory, offset, length });
}

/** Describes why a direct request breaks `alignment`, or undefined when it does not. */
export function misalignment(
  alignment: Alignment,
  buffers: readonly Uint8Array[],
  position: number | bigint,
): string | undefined {
  if (alignment.offset > 1 && BigInt(position) % BigInt(alignment.offset) !== 0n) {
    return `position ${String(position)} is not a multiple of ${alignment.offset}`;
  }
  const native = alignment.memory > 1 || alignment.length > 1 ? tryNativeBinding() : undefined;
  for (const [index, buffer] of buffers.entries()) {
    if (buffer.byteLength % alignment.length !== 0) {
      return `buffers[${index}] length ${buffer.byteLength} is not a multiple of ${alignment.length}`;
    }
    if (native !== undefined && alignment.memory > 1 && native.addressOffset(buffer, alignment.memory) !== 0) {
      return `buffers[${index}] address is not a multiple of ${alignment.memory} (use allocAligned)`;
    }
  }
  return undefined;
}
