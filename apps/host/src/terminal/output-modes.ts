import { endianness } from 'node:os';
import { loadBinding } from '@vmlink/native';

/**
 * Our terminal's output post-processing (termios OPOST) off while a remote terminal runs.
 * The guest's terminal already turned each \n into \r\n; Node's raw mode (libuv's
 * UV_TTY_MODE_RAW) keeps OPOST|ONLCR on, so ours would add another \r (lines ending in
 * \r\r\n) and alter whatever else a full-screen program sends. ssh clears OPOST for the
 * same reason (cfmakeraw); the guest's bytes are written to our terminal unchanged.
 */

/** Where c_oflag sits in tcgetattr's bytes and its bits (the addon's termiosLayout). */
export interface TermiosLayout {
  readonly size: number;
  readonly oflagOffset: number;
  readonly OPOST: number;
  readonly ONLCR: number;
}

/** The addon's termios calls (native/src/pty). */
export interface TermiosCalls {
  tcgetattr(fd: number): Buffer;
  tcsetattr(fd: number, modes: Buffer): void;
  readonly termiosLayout: TermiosLayout;
}

/** `modes` (tcgetattr bytes) with OPOST cleared: a copy, the input is left alone. */
export function withoutOutputProcessing(modes: Buffer, layout: TermiosLayout, byteOrder: 'BE' | 'LE' = endianness()): Buffer {
  if (modes.length !== layout.size) {
    throw Object.assign(new RangeError(`termios modes must be ${layout.size} bytes, got ${modes.length}`), { code: 'ERR_INVALID_ARG_VALUE' });
  }
  const copy = Buffer.from(modes);
  const read = byteOrder === 'LE' ? copy.readUInt32LE.bind(copy) : copy.readUInt32BE.bind(copy);
  const oflag = read(layout.oflagOffset) & ~layout.OPOST;
  if (byteOrder === 'LE') copy.writeUInt32LE(oflag >>> 0, layout.oflagOffset);
  else copy.writeUInt32BE(oflag >>> 0, layout.oflagOffset);
  return copy;
}

/**
 * The addon's termios calls, or undefined when this addon has none (unbuilt, an older
 * prebuild): the session then runs with Node's raw mode alone, as before.
 */
export function addonTermios(): TermiosCalls | undefined {
  try {
    const binding = loadBinding() as unknown as Partial<TermiosCalls>;
    if (typeof binding.tcgetattr !== 'function' || typeof binding.tcsetattr !== 'function' || !binding.termiosLayout) return undefined;
    return binding as TermiosCalls;
  } catch {
    return undefined;
  }
}

/**
 * Turns output processing off on the terminal `fd` and returns what puts its modes back
 * as they were found (idempotent). Nothing to do (a no-op back) when `fd` is not a
 * terminal or the calls are missing; a terminal gone meanwhile (EIO, EBADF) is ignored.
 */
export function passOutputThrough(fd: number | undefined, calls: TermiosCalls | undefined): () => void {
  if (fd === undefined || !calls) return () => undefined;
  let found: Buffer;
  try {
    found = calls.tcgetattr(fd);
    calls.tcsetattr(fd, withoutOutputProcessing(found, calls.termiosLayout));
  } catch {
    return () => undefined; // ENOTTY (output is a file or pipe): no post-processing there
  }
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    try {
      calls.tcsetattr(fd, found);
    } catch {
      // The terminal is gone: nothing left to restore.
    }
  };
}
