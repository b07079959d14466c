/**
 * Which of the pool's writes can run side by side. Linux file systems (ext4, xfs, btrfs)
 * take a file's inode lock for each buffered write, one writer at a time: a worker more
 * per write then only queues on that lock, and a convoy of sleeping writers hands it on
 * slower than two workers do (32 unaligned 2 KiB writes in flight to one cold file:
 * 2 workers 21k-28k writes/s, loop-delay p99 0.5 ms; the 28-32 the pool grew to, 11k-13k
 * and 2-3 ms; warm 4 KiB writes: 135k-144k against 92k-103k). So one file's buffered writes
 * count as at most `perFile` requests when the pool decides how far to grow.
 *
 * Whether an fd is O_DIRECT (its writes then run in parallel) is learned from the
 * completions (the hand-over call reports it): until one says so, an fd's writes count as
 * buffered, so a burst of buffered writes to a fresh fd never grows the pool, and an
 * O_DIRECT burst grows one completion later. An fd is forgotten once none of its writes
 * is in the pool, so a closed fd whose number is reused starts unknown again. Pure logic,
 * unit-tested in test/serial-writes.test.ts.
 */
export class SerialWrites {
  readonly #perFile: number;
  readonly #files = new Map<number, { inPool: number; direct: boolean }>();
  #excess = 0;

  /** `perFile`: how many of one file's buffered writes count toward growing the pool. */
  constructor(perFile: number) {
    this.#perFile = perFile;
  }

  /**
   * Writes in the pool that cannot run now only because an earlier write to the same
   * buffered file holds its lock: the pool's load minus this is what workers can serve.
   */
  get excess(): number {
    return this.#excess;
  }

  /** A write to `fd` entered the pool. */
  submitted(fd: number): void {
    let file = this.#files.get(fd);
    if (file === undefined) {
      file = { inPool: 0, direct: false };
      this.#files.set(fd, file);
    }
    file.inPool++;
    if (!file.direct && file.inPool > this.#perFile) this.#excess++;
  }

  /** A write to `fd` left the pool; `direct`: its completion said the fd is O_DIRECT (undefined: it did not say). */
  completed(fd: number, direct?: boolean): void {
    const file = this.#files.get(fd);
    if (file === undefined) return;
    if (!file.direct && file.inPool > this.#perFile) this.#excess--;
    file.inPool--;
    if (file.inPool === 0) {
      this.#files.delete(fd);
      return;
    }
    if (direct === undefined || direct === file.direct) return;
    const over = Math.max(0, file.inPool - this.#perFile);
    this.#excess += direct ? -over : over;
    file.direct = direct;
  }
}
