// Pure logic: option validation and the CLI's argument parsing.
import { describe, expect, it } from 'vitest';
import { parseCliArgs } from '../src/cli-args.js';
import {
  DEFAULT_BUF_ALLOC,
  DEFAULT_RX_BUFFERS_PER_READ,
  DEFAULT_TX_KICK_BATCH,
  DEFAULT_TX_KICK_DEFER_US,
  DEFAULT_TX_STREAM_BYTES,
  DEFAULT_TX_NOTIFY_BATCH,
  DEFAULT_TX_NOTIFY_DELAY_US,
  resolveDeviceOptions,
} from '../src/options.js';
import { qemuVsockArgs } from '../src/qemu-args.js';

describe('resolveDeviceOptions', () => {
  const ok = { socket: '/tmp/a.sock', udsPath: '/tmp/v.sock', guestCid: 3 };

  it('fills defaults and makes paths absolute', () => {
    const r = resolveDeviceOptions({ ...ok, socket: 'rel.sock' });
    expect(r.socket).toBe(`${process.cwd()}/rel.sock`);
    expect(r).toMatchObject({ udsPath: '/tmp/v.sock', guestCid: 3, bufAlloc: DEFAULT_BUF_ALLOC, maxConnections: 4096 });
  });

  it.each([
    [{ ...ok, guestCid: 2 }, 'ERR_OUT_OF_RANGE', /guestCid.*2/],
    [{ ...ok, guestCid: 0xffffffff }, 'ERR_OUT_OF_RANGE', /guestCid.*4294967295/],
    [{ ...ok, guestCid: 3.5 }, 'ERR_OUT_OF_RANGE', /guestCid/],
    [{ ...ok, guestCid: '3' }, 'ERR_INVALID_ARG_TYPE', /guestCid/],
    [{ socket: ok.socket, udsPath: ok.udsPath }, 'ERR_INVALID_ARG_TYPE', /guestCid/],
    [{ ...ok, socket: '' }, 'ERR_INVALID_ARG_TYPE', /socket/],
    [{ ...ok, udsPath: 5 }, 'ERR_INVALID_ARG_TYPE', /udsPath/],
    [{ ...ok, udsPath: `/tmp/${'x'.repeat(100)}` }, 'ERR_VMLINK_VSOCKD_PATH_TOO_LONG', /udsPath.*_4294967295/],
    [{ ...ok, socket: `/tmp/${'x'.repeat(110)}` }, 'ERR_VMLINK_VSOCKD_PATH_TOO_LONG', /socket/],
    [{ ...ok, udsPath: ok.socket }, 'ERR_VMLINK_VSOCKD_DUPLICATE', /same path/],
    [{ ...ok, bufAlloc: 100 }, 'ERR_OUT_OF_RANGE', /bufAlloc.*100/],
    [{ ...ok, maxConnections: 0 }, 'ERR_OUT_OF_RANGE', /maxConnections/],
    [{ ...ok, creditUpdateBytes: 0 }, 'ERR_OUT_OF_RANGE', /creditUpdateBytes.*0/],
    [{ ...ok, bufAlloc: 65536, creditUpdateBytes: 65537 }, 'ERR_OUT_OF_RANGE', /creditUpdateBytes.*<= 65536.*65537/],
    // Past what a Linux guest ever leaves unannounced: the connection would stall for good.
    [{ ...ok, bufAlloc: 1 << 20, creditUpdateBytes: 512 * 1024 }, 'ERR_OUT_OF_RANGE', /creditUpdateBytes.*<= 131072.*524288/],
    [{ ...ok, creditUpdateBytes: '1' }, 'ERR_INVALID_ARG_TYPE', /creditUpdateBytes/],
    [{ ...ok, txNotifyBatch: 0 }, 'ERR_OUT_OF_RANGE', /txNotifyBatch.*0/],
    [{ ...ok, txNotifyBatch: 1.5 }, 'ERR_OUT_OF_RANGE', /txNotifyBatch/],
    [{ ...ok, txNotifyDelayUs: -1 }, 'ERR_OUT_OF_RANGE', /txNotifyDelayUs.*-1/],
    [{ ...ok, txNotifyDelayUs: 10_000_001 }, 'ERR_OUT_OF_RANGE', /txNotifyDelayUs/],
    [{ ...ok, rxBuffersPerRead: 0 }, 'ERR_OUT_OF_RANGE', /rxBuffersPerRead.*0/],
    [{ ...ok, rxBuffersPerRead: 257 }, 'ERR_OUT_OF_RANGE', /rxBuffersPerRead.*257/],
    [{ ...ok, txKickDeferUs: -1 }, 'ERR_OUT_OF_RANGE', /txKickDeferUs.*-1/],
    [{ ...ok, txKickDeferUs: 10_000_001 }, 'ERR_OUT_OF_RANGE', /txKickDeferUs.*10000001/],
    [{ ...ok, txKickDeferUs: '5' }, 'ERR_INVALID_ARG_TYPE', /txKickDeferUs/],
    [{ ...ok, txKickBatch: 0 }, 'ERR_OUT_OF_RANGE', /txKickBatch.*0/],
    [{ ...ok, txKickBatch: 32769 }, 'ERR_OUT_OF_RANGE', /txKickBatch.*<= 32768.*32769/],
    [{ ...ok, txKickBatch: 2.5 }, 'ERR_OUT_OF_RANGE', /txKickBatch.*2\.5/],
    [{ ...ok, txKickBatch: '16' }, 'ERR_INVALID_ARG_TYPE', /txKickBatch/],
    [{ ...ok, txStreamBytes: 0 }, 'ERR_OUT_OF_RANGE', /txStreamBytes.*0/],
    [{ ...ok, txStreamBytes: 2 ** 31 + 1 }, 'ERR_OUT_OF_RANGE', /txStreamBytes.*2147483649/],
  ])('rejects %o with %s', (options, code, message) => {
    expect(() => resolveDeviceOptions(options)).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }));
  });

  it('interrupt and credit tunables: documented defaults, creditUpdateBytes follows bufAlloc, explicit values kept', () => {
    expect(resolveDeviceOptions(ok)).toMatchObject({
      creditUpdateBytes: DEFAULT_BUF_ALLOC / 2,
      txNotifyBatch: DEFAULT_TX_NOTIFY_BATCH,
      txNotifyDelayUs: DEFAULT_TX_NOTIFY_DELAY_US,
      rxBuffersPerRead: DEFAULT_RX_BUFFERS_PER_READ,
      txKickDeferUs: DEFAULT_TX_KICK_DEFER_US,
      txKickBatch: DEFAULT_TX_KICK_BATCH,
      txStreamBytes: DEFAULT_TX_STREAM_BYTES,
    });
    expect(DEFAULT_TX_KICK_BATCH).toBe(16);
    expect(DEFAULT_TX_STREAM_BYTES).toBe(256 * 1024);
    expect(resolveDeviceOptions({ ...ok, txKickBatch: 1, txStreamBytes: 1 })).toMatchObject({ txKickBatch: 1, txStreamBytes: 1 });
    expect(resolveDeviceOptions({ ...ok, txKickDeferUs: 0 }).txKickDeferUs).toBe(0);
    expect(resolveDeviceOptions({ ...ok, txKickDeferUs: 10_000_000 }).txKickDeferUs).toBe(10_000_000);
    expect(resolveDeviceOptions({ ...ok, bufAlloc: 65536 }).creditUpdateBytes).toBe(32768);
    // A Linux guest keeps at most 256 KiB in flight whatever bufAlloc says: updates must come sooner.
    expect(resolveDeviceOptions({ ...ok, bufAlloc: 1 << 20 }).creditUpdateBytes).toBe(128 * 1024);
    expect(resolveDeviceOptions({ ...ok, bufAlloc: 65536, creditUpdateBytes: 65536, txNotifyBatch: 1, txNotifyDelayUs: 0 })).toMatchObject({
      creditUpdateBytes: 65536,
      txNotifyBatch: 1,
      txNotifyDelayUs: 0,
    });
  });

  it('rejects a non-object', () => {
    expect(() => resolveDeviceOptions(null)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('parseCliArgs', () => {
  it('takes one VM from flags (also --flag=value)', () => {
    expect(parseCliArgs(['--socket', '/s', '--uds-path=/u', '--guest-cid', '4'])).toEqual({ help: false, vms: [{ socket: '/s', udsPath: '/u', guestCid: 4 }] });
  });

  it('takes repeated --vm groups like vhost-device-vsock', () => {
    const args = parseCliArgs(['--vm', 'guest-cid=3,socket=/a,uds-path=/b', '--vm', 'guest-cid=4,socket=/c,uds-path=/d,buf-alloc=65536']);
    expect(args.vms).toEqual([
      { guestCid: 3, socket: '/a', udsPath: '/b' },
      { guestCid: 4, socket: '/c', udsPath: '/d', bufAlloc: 65536 },
    ]);
  });

  it.each([
    [[], /no VM given/],
    [['--socket', '/s', '--guest-cid', '3'], /'uds-path' is missing/],
    [['--vm', 'guest-cid=3,socket=/a'], /--vm #1: 'uds-path' is missing/],
    [['--vm', 'guest-cid=3,socket=/a,uds-path=/b,color=red'], /unknown key 'color'/],
    [['--vm', 'guest-cid=x,socket=/a,uds-path=/b'], /guest-cid must be a decimal integer, got 'x'/],
    [['--vm', 'guest-cid=3,socket=/a,uds-path=/b', '--vm', 'guest-cid=3,socket=/c,uds-path=/d'], /guest-cid '3' is given to two VMs/],
    [['--vm', 'guest-cid=3,socket=/a,uds-path=/b', '--vm', 'guest-cid=4,socket=/a,uds-path=/d'], /socket '\/a' is given to two VMs/],
    [['--socket'], /--socket needs a value/],
    [['--frobnicate'], /unknown argument '--frobnicate'/],
  ])('rejects %o', (argv, message) => {
    expect(() => parseCliArgs(argv)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_VSOCKD_BAD_ARGUMENT', message: expect.stringMatching(message) }));
  });

  it('takes the tuning keys as flags and in --vm groups', () => {
    const args = parseCliArgs([
      '--socket', '/s', '--uds-path', '/u', '--guest-cid', '3', '--tx-notify-batch', '8', '--tx-notify-delay-us=500',
      '--tx-kick-batch', '1',
      '--vm', 'guest-cid=4,socket=/c,uds-path=/d,credit-update-bytes=4096,rx-buffers-per-read=4,tx-kick-defer-us=2000,tx-stream-bytes=65536',
    ]);
    expect(args.vms).toEqual([
      { socket: '/s', udsPath: '/u', guestCid: 3, txNotifyBatch: 8, txNotifyDelayUs: 500, txKickBatch: 1 },
      { socket: '/c', udsPath: '/d', guestCid: 4, creditUpdateBytes: 4096, rxBuffersPerRead: 4, txKickDeferUs: 2000, txStreamBytes: 65536 },
    ]);
    expect(() => parseCliArgs(['--vm', 'guest-cid=3,socket=/a,uds-path=/b,tx-notify-batch=x'])).toThrow(/tx-notify-batch must be a decimal integer, got 'x'/);
  });

  it('--help needs no VM', () => {
    expect(parseCliArgs(['--help'])).toEqual({ help: true, vms: [] });
  });
});

describe('qemuVsockArgs', () => {
  it('gives the memfd backend of the guest memory size and the device on the socket (commas doubled)', () => {
    expect(qemuVsockArgs({ socket: '/tmp/a,b.sock', memoryMiB: 512 })).toEqual([
      '-object', 'memory-backend-memfd,id=vmlink-mem,size=512M,share=on',
      '-machine', 'memory-backend=vmlink-mem',
      '-chardev', 'socket,id=vmlink-vsock,path=/tmp/a,,b.sock',
      '-device', 'vhost-user-vsock-pci,chardev=vmlink-vsock',
    ]);
  });

  it("bus 'mmio' (-M microvm): vhost-user-vsock-device", () => {
    expect(qemuVsockArgs({ socket: '/s', memoryMiB: 256, bus: 'mmio' }).at(-1)).toBe('vhost-user-vsock-device,chardev=vmlink-vsock');
  });
});
