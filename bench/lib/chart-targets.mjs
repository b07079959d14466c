// The benchmark targets the charts draw, in one place (from the issues that set them).
// A row's key is what the chart module reads out of the bench's JSON; `better` says which
// way the ratio should go: 'higher' (a rate: ours / baseline >= target) or 'lower' (a
// latency: ours / baseline <= target). A row without `target` is a reference: drawn, no line.

/** bench/aio throughput rows, keyed `engine | baseline` (issue 11; bench/aio/README.md). */
export const aioTargets = {
  '4 KiB random read, O_DIRECT, 32 in flight': {
    'iosubmit | fio libaio iodepth=32 batched': { target: 0.9 },
    'threadpool (defaults) | fio psync numjobs=32': { target: 0.9 },
  },
  '4 KiB random read, O_DIRECT, 2 in flight': {
    'threadpool (defaults) | fio psync numjobs=2': { target: 0.9 },
  },
  '128 KiB sequential read, O_DIRECT, 16 in flight': {
    'iosubmit | fio libaio iodepth=16 batched': { target: 0.95 },
  },
  // The issue names the thread pool; bench/aio holds iosubmit to the same line.
  '4 KiB random read, buffered, warm cache, 32 in flight': {
    'threadpool | node FileHandle': { target: 4 },
    'iosubmit | node FileHandle': { target: 4 },
  },
};

/** bench/aio stall suite: loop delay p99 in ms, absolute (issue 11), for the engines we ship. */
export const aioStallTarget = { p99Ms: 1, engines: ['iosubmit', 'threadpool'] };

/** bench/vsock (issue 10, and the bench's own header for the socat and latency rows). */
export const vsockTargets = {
  sendVsC: { target: 0.8 },
  receiveVsC: { target: 0.8 },
  oneWayVsSocat: { target: 0.9 },
  latencyVsNet: { target: 1.2, better: 'lower' },
};

/** bench/hvsock: hvsock through the device vs QEMU's virtio-serial, same boot (issue 10). */
export const hvsockTargets = {
  guestToHost: { target: 1.0 },
  hostToGuest: { target: 1.0 },
  pingP50: { target: 1.0, better: 'lower' },
  pingP99: { better: 'lower' },
};

/** bench/virtio-serial (its header): RPC bulk vs socat, RPC round trips vs raw echo. */
export const virtioSerialTargets = {
  rawVsSocat: {},
  rpcVsSocat: { target: 0.8 },
  tripsVsEcho: { target: 0.5 },
};

/** bench/rpc (its header): RPC round trips vs raw Connection echo; one in flight has the target. */
export const rpcTargets = {
  1: { target: 0.5 },
  16: {},
};
