import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * TEST DOUBLE (pure logic, in-process): a "hybrid vsock muxer" like the host side of
 * Firecracker / Cloud Hypervisor / vhost-device-vsock, with no VM behind it. It accepts
 * on `udsPath`, reads `CONNECT <port>\n` (keyword in any case), connects to a local Unix
 * socket playing the guest's listener on that port, answers `OK <n>\n` (n counts up from
 * 2^30 like Firecracker's host ports) and then bridges bytes both ways, half-close
 * included. Where nothing plays the guest's port it closes without a reply, as every
 * muxer does. Guest port P is played by `routes.get(P)`, or by default by the host's own
 * `<udsPath>_<P>`: a guest that forwards each connection back to host port P, so a
 * host `hvsock:` listener can be dialed through the muxer.
 *
 * It proves the client against the protocol as written down; the real host<->guest run
 * needs the vhost-user device and a guest.
 */
export class HybridVsockMuxerDouble {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private nextHostPort = 2 ** 30;
  /** Guest ports that accept a CONNECT and never answer (a guest whose driver is not up: Firecracker queues). */
  readonly stalledPorts = new Set<number>();
  readonly routes = new Map<number, string>();

  private constructor(readonly udsPath: string) {
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.serve(socket));
  }

  static async start(udsPath: string): Promise<HybridVsockMuxerDouble> {
    const muxer = new HybridVsockMuxerDouble(udsPath);
    muxer.server.listen(udsPath);
    await once(muxer.server, 'listening');
    return muxer;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  }

  private serve(host: Socket): void {
    this.track(host);
    let pending = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      const newline = pending.indexOf(0x0a);
      if (newline === -1) {
        if (pending.length > 64) host.destroy();
        return;
      }
      host.removeListener('data', onData);
      host.pause();
      const match = /^connect ([0-9]+)$/i.exec(pending.subarray(0, newline).toString('latin1'));
      const early = pending.subarray(newline + 1);
      if (!match) {
        host.destroy();
        return;
      }
      const port = Number(match[1]);
      if (this.stalledPorts.has(port)) return; // never answers; the client times out
      this.bridge(host, port, early);
    };
    host.on('data', onData);
  }

  private bridge(host: Socket, port: number, early: Buffer): void {
    const guest = createConnection({ path: this.routes.get(port) ?? `${this.udsPath}_${port}`, allowHalfOpen: true });
    this.track(guest);
    guest.once('error', () => host.destroy()); // nobody plays that port: close, no reply
    guest.once('connect', () => {
      host.write(`OK ${this.nextHostPort++}\n`);
      if (early.length > 0) guest.write(early);
      host.pipe(guest);
      guest.pipe(host);
      host.resume();
      // A reset on either side resets the other (vsock RST), not a clean end.
      host.once('close', () => guest.destroy());
      guest.once('close', () => host.destroy());
    });
  }

  async close(): Promise<void> {
    const closed = once(this.server, 'close');
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}
