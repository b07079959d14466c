// Types of the exports src/aio provides: buffer address checks and O_DIRECT alignment.

/** Where an alignment came from: statx(STATX_DIOALIGN), the device's logical block size, or a 4096 default. */
export type DioAlignmentSource = 'statx' | 'sysfs' | 'default';

/** O_DIRECT alignment of a file, as dioAlignment() found it. */
export interface DioAlignmentInfo {
  readonly memory: number;
  readonly offset: number;
  readonly length: number;
  readonly source: DioAlignmentSource;
}

/** The AIO part of the addon (src/aio). */
export interface AioBinding {
  /** The real address of `view`'s first byte modulo `alignment` (a power of two). */
  addressOffset(view: ArrayBufferView, alignment: number): number;
  /**
   * O_DIRECT alignment of an open fd. 'auto' (default) tries statx, then sysfs, then
   * 4096; 'statx' and 'sysfs' force one method and throw (EOPNOTSUPP, ENOENT) when it
   * has no answer. A closed fd throws EBADF.
   */
  dioAlignment(fd: number, method?: 'auto' | 'statx' | 'sysfs'): DioAlignmentInfo;
  /**
   * fallocate(2) on libuv's pool (the fs backend's, as node:fs has none). `mode` is the
   * raw FALLOC_FL_* bits. Rejects with an errno-named error (syscall 'fallocate').
   */
  fileFallocate(fd: number, mode: number, offset: bigint, length: bigint): Promise<void>;
  /**
   * On libuv's pool: punch-hole (keep size) on a regular file, ioctl(BLKDISCARD) on a
   * block device. Rejects with an errno-named error (syscall 'fallocate' or 'ioctl').
   */
  fileDiscard(fd: number, offset: bigint, length: bigint): Promise<void>;
}
