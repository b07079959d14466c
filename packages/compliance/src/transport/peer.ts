import type { Connection, Listener, Transport } from '@vmlink/transport';
import { patternBytes, sha256 } from './bytes.js';
import { readExactly, readLine, writeAll } from './streams.js';

/**
 * The compliance peer: the other end of every data test. Each Connection starts with
 * one ASCII command line; the suite only ever dials, so the peer can run in this
 * process, in another process, or inside a guest VM (virtio-serial host<->guest).
 *
 *   echo                  send back every byte; end when the input ends
 *   send <n> <seed>       send patternBytes(n, seed), then end
 *   sink <n>              read n bytes, reply "<sha256 hex>\n"
 *   hold <ms> <n>         read nothing for ms, then like sink <n> (backpressure test)
 *   halfclose             read until the input ends, then reply "got <n>\n" and end
 */
export const PEER_COMMANDS = ['echo', 'send', 'sink', 'hold', 'halfclose'] as const;

const MAX_PEER_BYTES = 1024 * 1024 * 1024;

function count(text: string | undefined, what: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_PEER_BYTES) throw new Error(`bad ${what} '${text}'`);
  return value;
}

function countBytesUntilEnd(connection: Connection): Promise<number> {
  return new Promise((resolve, reject) => {
    let total = 0;
    connection.on('data', (chunk: Buffer) => (total += chunk.length));
    connection.once('end', () => resolve(total));
    connection.once('error', reject);
    connection.resume(); // readLine() paused it; a new 'data' listener alone does not resume
  });
}

/** Serve one Connection: read the command, act on it. Errors end the Connection only. */
export async function servePeerConnection(connection: Connection): Promise<void> {
  connection.on('error', () => {}); // a dialer that destroys mid-test is normal here
  try {
    const [command, a, b] = (await readLine(connection, 256)).split(' ');
    switch (command) {
      case 'echo':
        connection.pipe(connection);
        connection.resume();
        return;
      case 'send':
        await writeAll(connection, patternBytes(count(a, 'length'), count(b, 'seed')));
        connection.end();
        return;
      case 'hold':
        await new Promise((resolve) => setTimeout(resolve, count(a, 'delay')));
        connection.write(`${sha256(await readExactly(connection, count(b, 'length')))}\n`);
        return;
      case 'sink':
        connection.write(`${sha256(await readExactly(connection, count(a, 'length')))}\n`);
        return;
      case 'halfclose':
        connection.end(`got ${await countBytesUntilEnd(connection)}\n`);
        return;
      default:
        throw new Error(`unknown command '${command}'`);
    }
  } catch (error) {
    connection.destroy(error as Error);
  }
}

/** Serve every Connection a listener accepts; stops when the listener closes. */
export function servePeer(listener: Listener): void {
  listener.on('connection', (connection) => void servePeerConnection(connection));
}

export interface PeerHandle {
  /** Where the suite dials the peer. */
  readonly address: string;
  close(): Promise<void>;
}

/** A peer in this process: listen on `address` with `transport` and serve. */
export async function startLocalPeer(transport: Transport, address: string): Promise<PeerHandle> {
  const listener = await transport.listen(address);
  servePeer(listener);
  return { address: listener.address(), close: () => listener.close() };
}
