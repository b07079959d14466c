import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';

/** One step of a scripted VMM reply. */
export type Step =
  | { readonly write: string | Buffer }
  /** Let the client read what was written before the next step (see `settle`). */
  | { readonly settle: true }
  | { readonly end: true }
  | { readonly destroy: true };

/**
 * TEST DOUBLE (pure logic): a Unix socket that replays what a Firecracker-style VMM
 * does on its host socket, one script per test: it reads the client's first line (kept
 * in `commands`), then runs `steps`. `settle` waits 20 ms so the next write lands in a
 * separate read on the client (on a loaded machine the two writes may still coalesce;
 * the assertions hold either way, the split case is then simply not exercised).
 */
export class ScriptedVmmSocket {
  readonly commands: string[] = [];
  /** Bytes the client sent after its command line, per connection. */
  readonly received: Buffer[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly idle = new Set<() => void>();

  private constructor(readonly path: string, private readonly steps: readonly Step[]) {
    this.server = createServer({ allowHalfOpen: true }, (socket) => void this.run(socket));
  }

  static async start(path: string, steps: readonly Step[]): Promise<ScriptedVmmSocket> {
    const vmm = new ScriptedVmmSocket(path, steps);
    vmm.server.listen(path);
    await once(vmm.server, 'listening');
    return vmm;
  }

  private async run(socket: Socket): Promise<void> {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      if (this.sockets.size === 0) for (const resolve of this.idle) resolve();
    });
    socket.on('error', () => {});
    // The client's close ends the VMM's side too (a VMM shuts the guest side and closes).
    socket.once('end', () => socket.end());
    const index = this.received.push(Buffer.alloc(0)) - 1;
    let buffered = Buffer.alloc(0);
    let commandSeen = false;
    const gotCommand = new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        if (commandSeen) {
          this.received[index] = Buffer.concat([this.received[index] ?? Buffer.alloc(0), chunk]);
          return;
        }
        buffered = Buffer.concat([buffered, chunk]);
        const newline = buffered.indexOf(0x0a);
        if (newline === -1) return;
        commandSeen = true;
        this.commands.push(buffered.subarray(0, newline + 1).toString('latin1'));
        this.received[index] = buffered.subarray(newline + 1);
        resolve();
      });
    });
    await gotCommand;
    for (const step of this.steps) {
      if ('write' in step) socket.write(step.write);
      else if ('settle' in step) await new Promise((resolve) => setTimeout(resolve, 20));
      else if ('end' in step) socket.end();
      else socket.destroy();
    }
  }

  /** Resolves once no client connection is open (the client closed its side too). */
  allClosed(): Promise<void> {
    if (this.sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.idle.delete(done);
        resolve();
      };
      this.idle.add(done);
    });
  }

  async close(): Promise<void> {
    const closed = once(this.server, 'close');
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}
