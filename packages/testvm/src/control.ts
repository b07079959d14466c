import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseGuestMessage, type GuestMessage, type HostMessage } from './protocol.js';

const MAX_LINE_BYTES = 4 * 1024 * 1024;

/**
 * The host end of the control port: QEMU's chardev socket, kept connected for the VM's
 * life (the guest's reads see EOF whenever no host client is connected).
 */
export class ControlChannel {
  private pending = '';

  constructor(
    private readonly socket: Socket,
    private readonly onMessage: (message: GuestMessage) => void,
    onProtocolError: (detail: string) => void,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.pending += text;
      let newline: number;
      while ((newline = this.pending.indexOf('\n')) >= 0) {
        const line = this.pending.slice(0, newline);
        this.pending = this.pending.slice(newline + 1);
        if (line.trim() === '') continue;
        const message = parseGuestMessage(line);
        if (message === undefined) onProtocolError(`unexpected line from the guest: ${line.slice(0, 200)}`);
        else this.onMessage(message);
      }
      if (this.pending.length > MAX_LINE_BYTES) {
        onProtocolError(`a line from the guest is longer than ${MAX_LINE_BYTES} bytes`);
        this.pending = '';
      }
    });
    socket.on('error', () => {
      // 'close' follows; the VM notices QEMU's exit through the supervisor.
    });
  }

  send(message: HostMessage): void {
    if (!this.socket.destroyed) this.socket.write(`${JSON.stringify(message)}\n`);
  }

  ref(): void {
    this.socket.ref();
  }

  unref(): void {
    this.socket.unref();
  }

  close(): void {
    this.socket.destroy();
  }
}

function tryConnect(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const fail = (): void => {
      socket.destroy();
      resolve(undefined);
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/** Connects once QEMU has created the socket; gives up when `stillTrying()` says so. */
export async function connectWhenListening(path: string, stillTrying: () => boolean): Promise<Socket | undefined> {
  while (stillTrying()) {
    const socket = await tryConnect(path);
    if (socket !== undefined) return socket;
    await sleep(25);
  }
  return undefined;
}
