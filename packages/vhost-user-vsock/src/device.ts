import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { loadBinding, type VhostUserVsockDevice as NativeDevice, type VhostUserVsockDeviceOptions } from '@vmlink/native';
import { VsockDeviceError, VsockDeviceErrorCode } from './errors.js';
import { reclaimSocketPath } from './listen-path.js';
import { resolveDeviceOptions, type ResolvedVsockDeviceOptions, type VsockDeviceOptions } from './options.js';
import { statsFromNative, type VsockDeviceStats } from './stats.js';

export interface VsockDeviceEvents {
  /** A QEMU connected on the vhost-user socket. */
  'qemu-connected': [];
  /** The QEMU went away (exited, killed); the device waits for the next one. */
  'qemu-disconnected': [reason: string];
  /** The guest driver started the rx/tx rings: host clients can connect now. */
  'driver-ready': [];
  /** The driver stopped (guest reboot, QEMU gone): every host connection was closed. */
  reset: [reason: string];
  /** Something was dropped or refused (rate-limited; counters in stats() have every case). */
  log: [line: string];
}

/** Where host -> guest SEQPACKET clients connect. */
export function seqpacketPathOf(udsPath: string): string {
  return `${udsPath}.seqpacket`;
}

// Paths in use by devices of this process: two devices on one path would steal each other's clients.
const pathsInUse = new Set<string>();

/**
 * One virtio-vsock device for one VM: QEMU connects to `socket`
 * (`-device vhost-user-vsock-pci`), host programs use `udsPath` (hybrid vsock).
 */
export class VsockDevice extends EventEmitter<VsockDeviceEvents> {
  readonly socket: string;
  readonly udsPath: string;
  readonly guestCid: number;
  /** `${udsPath}.seqpacket` when the device offers SEQPACKET, else undefined. */
  readonly seqpacketPath: string | undefined;
  #native: NativeDevice | undefined;
  #closing: Promise<void> | undefined;

  /** @internal use createVsockDevice() */
  constructor(options: ResolvedVsockDeviceOptions, native: (onEvent: (name: string, detail: string) => void) => NativeDevice) {
    super();
    this.socket = options.socket;
    this.udsPath = options.udsPath;
    this.guestCid = options.guestCid;
    this.seqpacketPath = options.seqpacket ? seqpacketPathOf(options.udsPath) : undefined;
    this.#native = native((name, detail) => this.#onNativeEvent(name, detail));
  }

  #onNativeEvent(name: string, detail: string): void {
    switch (name) {
      case 'qemu-connected':
      case 'driver-ready':
        this.emit(name);
        break;
      case 'qemu-disconnected':
      case 'reset':
      case 'log':
        this.emit(name, detail);
        break;
      default:
        break;
    }
  }

  get closed(): boolean {
    return this.#native === undefined;
  }

  /** Counters and state; throws ERR_VMLINK_VSOCKD_CLOSED after close(). */
  stats(): VsockDeviceStats {
    if (this.#native === undefined) {
      throw new VsockDeviceError(VsockDeviceErrorCode.CLOSED, `the vsock device for guest CID ${this.guestCid} is closed`);
    }
    return statsFromNative(this.#native.stats());
  }

  /**
   * Stops serving: QEMU's connection, every host connection and both listeners are
   * closed, guest memory is unmapped, the socket files are removed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const native = this.#native;
      this.#native = undefined;
      native?.close();
      pathsInUse.delete(this.socket);
      pathsInUse.delete(this.udsPath);
      for (const path of [this.socket, this.udsPath, ...(this.seqpacketPath === undefined ? [] : [this.seqpacketPath])]) {
        await unlink(path).catch(() => {});
      }
    })();
    return this.#closing;
  }

  /** @internal test harness: run vhost-user messages and every queue now. */
  serviceNow(): void {
    this.#native?.serviceNow();
  }
}

export interface CreateDeviceHooks {
  /** @internal test harness: an already connected vhost-user fd instead of listening on `socket`. */
  vhostConnectedFd?: number;
}

/**
 * Creates the device and resolves once `socket` and `udsPath` listen, so QEMU can be
 * started right after. Bad options reject with a coded error naming the value.
 */
export async function createVsockDevice(options: VsockDeviceOptions, hooks: CreateDeviceHooks = {}): Promise<VsockDevice> {
  const resolved = resolveDeviceOptions(options);
  for (const [name, path] of [['options.socket', resolved.socket], ['options.udsPath', resolved.udsPath]] as const) {
    if (pathsInUse.has(path)) {
      throw new VsockDeviceError(VsockDeviceErrorCode.DUPLICATE, `${name} '${path}' is already used by another vsock device in this process`);
    }
  }
  const binding = loadBinding();
  const useSocket = hooks.vhostConnectedFd === undefined;
  if (useSocket) await reclaimSocketPath(resolved.socket, 'options.socket');
  await reclaimSocketPath(resolved.udsPath, 'options.udsPath');
  const seqpacketPath = resolved.seqpacket ? seqpacketPathOf(resolved.udsPath) : undefined;
  if (seqpacketPath !== undefined) await reclaimSocketPath(seqpacketPath, 'the seqpacket listener');
  // Listeners made so far, undone if a later one fails.
  const made: { fd: number; path: string }[] = [];
  const listen = (path: string, type: 'stream' | 'seqpacket'): number => {
    const fd = binding.unixListen(path, 128, type);
    made.push({ fd, path });
    return fd;
  };
  let vhostListenFd: number | undefined;
  let udsListenFd: number;
  let udsSeqpacketListenFd: number | undefined;
  try {
    vhostListenFd = useSocket ? listen(resolved.socket, 'stream') : undefined;
    udsListenFd = listen(resolved.udsPath, 'stream');
    udsSeqpacketListenFd = seqpacketPath === undefined ? undefined : listen(seqpacketPath, 'seqpacket');
  } catch (err) {
    for (const { fd, path } of made) {
      closeSync(fd);
      await unlink(path).catch(() => {});
    }
    throw err;
  }
  pathsInUse.add(resolved.socket);
  pathsInUse.add(resolved.udsPath);
  const typedOptions: VhostUserVsockDeviceOptions = {
    guestCid: resolved.guestCid,
    udsPath: resolved.udsPath,
    udsListenFd,
    ...(udsSeqpacketListenFd === undefined ? {} : { udsSeqpacketListenFd }),
    ...(vhostListenFd === undefined ? { vhostConnectedFd: hooks.vhostConnectedFd } : { vhostListenFd }),
    bufAlloc: resolved.bufAlloc,
    maxConnections: resolved.maxConnections,
    logLinesPerSecond: resolved.logLinesPerSecond,
    creditUpdateBytes: resolved.creditUpdateBytes,
    txNotifyBatch: resolved.txNotifyBatch,
    txNotifyDelayUs: resolved.txNotifyDelayUs,
    rxBuffersPerRead: resolved.rxBuffersPerRead,
    txKickDeferUs: resolved.txKickDeferUs,
    txKickBatch: resolved.txKickBatch,
    txStreamBytes: resolved.txStreamBytes,
  };
  return new VsockDevice(resolved, (onEvent) => new binding.VhostUserVsockDevice(typedOptions, onEvent));
}
