import { close as closeFd, constants as fsConstants, open as openFd } from 'node:fs';

/**
 * The same file opened a second time without O_DIRECT (through /proc/self/fd), for the
 * requests O_DIRECT refuses anywhere (misaligned memory, offset or length): the fallback
 * does them on this fd. Opened on first use, closed with the file.
 */
export class BufferedTwin {
  readonly #fd: number;
  readonly #flags: string | number;
  #twin: Promise<number> | undefined;

  constructor(fd: number, flags: string | number) {
    this.#fd = fd;
    this.#flags = flags;
  }

  /** The buffered fd, opened on the first call. */
  fd(): Promise<number> {
    this.#twin ??= new Promise<number>((resolve, reject) => {
      const flags = typeof this.#flags === 'number' ? this.#flags : fsConstants.O_RDWR;
      // Same access mode and O_APPEND; no O_DIRECT, no O_CREAT/O_TRUNC (the file exists).
      const twinFlags = (flags & 3) | (flags & fsConstants.O_APPEND);
      openFd(`/proc/self/fd/${this.#fd}`, twinFlags, (error, fd) => (error ? reject(error) : resolve(fd)));
    });
    return this.#twin;
  }

  /** Closes the twin if one was opened (an open that failed leaves nothing to close). */
  async close(): Promise<void> {
    if (this.#twin === undefined) return;
    const fd = await this.#twin.catch(() => -1);
    if (fd < 0) return;
    await new Promise<void>((resolve, reject) => closeFd(fd, (error) => (error ? reject(error) : resolve())));
  }
}
