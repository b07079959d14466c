/**
 * Which submitted requests rode in a slow io_submit call. Pure logic over the addon's
 * submit records ([iocbs passed, iocbs accepted, microseconds] per io_submit call): the
 * addon only reports the timings; calling a call "slow" (it did I/O inside: a buffered
 * NOWAIT read that started readahead and waited for it) is decided here, by
 * `usPerIocb` (the backend's slowSubmitUsPerIocb option).
 */
export function slowSubmitFlags(records: ArrayLike<number>, recordCount: number, stride: number, usPerIocb: number): boolean[] {
  const flags: boolean[] = [];
  for (let r = 0; r < recordCount; r++) {
    const accepted = records[r * stride + 1] as number;
    const micros = records[r * stride + 2] as number;
    const slow = micros > accepted * usPerIocb;
    // The accepted requests of the records are the submitted requests, in order.
    for (let i = 0; i < accepted; i++) flags.push(slow);
  }
  return flags;
}
