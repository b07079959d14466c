/**
 * A budget across all connections for the memory that requests hold while they stream
 * (receive windows, read-ahead, reply buffers). Each request reserves its estimated cost
 * before it starts and releases it when it ends; one that does not fit is refused
 * (ERR_VMLINK_BUSY) instead of growing the agent. Pure bookkeeping, no timers.
 */
export class MemoryBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  get inUse(): number {
    return this.used;
  }

  /** A release function, or undefined when `bytes` does not fit right now. */
  tryReserve(bytes: number): (() => void) | undefined {
    if (bytes <= 0) return () => undefined;
    if (this.used + bytes > this.limit) return undefined;
    this.used += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
    };
  }
}

const MiB = 1024 * 1024;

/**
 * What one request of each method may hold at its peak, as the agent is built today:
 * fs.read a 1 MiB credit window of sent chunks plus 1-2 MiB of AIO read-ahead; fs.write
 * a 1 MiB receive window plus one AIO write buffer; exec a window of output; fs.list a
 * reply of up to 10,000 entries. ping/info/fs.stat are small and not counted.
 */
export const METHOD_MEMORY_COST: Readonly<Record<string, number>> = {
  'fs.read': 3 * MiB,
  'fs.write': 2 * MiB,
  exec: 1 * MiB,
  'fs.list': 2 * MiB,
  // A 1 MiB read buffer; rm -r holds up to 1,000 names per directory level it is in.
  'fs.hash': 1 * MiB,
  'fs.rm': 2 * MiB,
  // A forwarded connection: one body window each way, reserved by its net.connect whether
  // the client's bytes come in its body or (older clients) in a net.send, which adds none.
  'net.connect': 2 * MiB,
  'exec.stdin': 1 * MiB,
  // A body window of a detached process's output (its rings are the registry's, counted
  // by --max-detached x --detached-output); start/list/wait/kill send small replies.
  'detached.attach': 1 * MiB,
};
