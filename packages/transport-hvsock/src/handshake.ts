import type { Socket } from 'node:net';
import { SystemError, VmlinkError } from '@vmlink/errors';

/**
 * Longest reply line accepted, newline included. `OK 4294967295\n` is 14 bytes; a peer
 * that sends more without a newline is not a hybrid-vsock muxer, and its bytes are not
 * buffered without bound.
 */
export const MAX_REPLY_LINE_BYTES = 64;

const NEWLINE = 0x0a;
/** `OK <n>`: keyword in any case (Firecracker matches it so itself), one decimal u32. */
const OK_REPLY = /^ok[ \t]+([0-9]{1,10})[ \t]*\r?$/i;
const MAX_PORT = 0xffff_ffff;

/** `ERR_VMLINK_HVSOCK_BAD_REPLY`: the VMM answered something that is not `OK <n>\n`. */
export function badReply(address: string, why: string): VmlinkError {
  return new VmlinkError('ERR_VMLINK_HVSOCK_BAD_REPLY', `Hybrid vsock handshake with ${address} failed: ${why}`);
}

/** A printable excerpt of untrusted reply bytes. */
function quote(bytes: Buffer): string {
  return JSON.stringify(bytes.subarray(0, MAX_REPLY_LINE_BYTES).toString('latin1'));
}

/**
 * The VMM closed the socket before a full `OK` line: the way every hybrid-vsock muxer
 * says "no" (nobody listens on the guest port, a bad command, too many connections).
 */
function refused(address: string, port: number, partial: Buffer): SystemError {
  const got = partial.length === 0 ? 'no reply' : `only ${quote(partial)}`;
  return new SystemError({
    code: 'ECONNREFUSED',
    errno: 111,
    syscall: 'connect',
    address,
    port,
    message: `connect ECONNREFUSED ${address} (the VMM closed the connection before answering OK: ${got}; is a guest listening on vsock port ${port}?)`,
  });
}

/** Parse one reply line (without its newline) into the number after OK. */
export function parseOkReply(line: Buffer, address: string): number {
  const match = OK_REPLY.exec(line.toString('latin1'));
  const digits = match?.[1];
  if (digits === undefined) throw badReply(address, `expected 'OK <port>', got ${quote(line)}`);
  const value = Number(digits);
  if (value > MAX_PORT) throw badReply(address, `the port in ${quote(line)} is larger than ${MAX_PORT}`);
  return value;
}

/**
 * Send `CONNECT <port>\n` and read the reply up to and including its newline, never
 * further: bytes after it (the guest may write at once, and they can arrive in the same
 * segment) are pushed back with `unshift()` and are the Connection's first data.
 * Resolves with the number after OK. Settles on every outcome: the reply, a close (
 * ECONNREFUSED), a socket error, a bad or over-long line (ERR_VMLINK_HVSOCK_BAD_REPLY),
 * or `signal`.
 */
export function hybridVsockHandshake(socket: Socket, port: number, address: string, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let length = 0;
    const cleanup = (): void => {
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onClosed);
      socket.removeListener('close', onClosed);
      socket.removeListener('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onClosed = (): void => fail(refused(address, port, Buffer.concat(parts)));
    // A reset before OK is the same answer as a close: nobody took the connection.
    const onError = (error: NodeJS.ErrnoException): void =>
      fail(error.code === 'ECONNRESET' || error.code === 'EPIPE' ? refused(address, port, Buffer.concat(parts)) : error);
    const onAbort = (): void => fail(signal.reason as Error);
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        const newline = chunk.indexOf(NEWLINE);
        const lineBytes = length + (newline === -1 ? chunk.length : newline + 1);
        if (lineBytes > MAX_REPLY_LINE_BYTES) {
          fail(badReply(address, `no newline within ${MAX_REPLY_LINE_BYTES} bytes of reply (${quote(Buffer.concat([...parts, chunk]))}...)`));
          return;
        }
        if (newline === -1) {
          parts.push(chunk);
          length += chunk.length;
          continue;
        }
        const line = Buffer.concat([...parts, chunk.subarray(0, newline)]);
        const rest = chunk.subarray(newline + 1);
        cleanup();
        if (rest.length > 0) socket.unshift(rest);
        try {
          resolve(parseOkReply(line, address));
        } catch (error) {
          reject(error as Error);
        }
        return;
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('readable', onReadable);
    socket.once('end', onClosed);
    socket.once('close', onClosed);
    socket.on('error', onError);
    socket.write(`CONNECT ${port}\n`);
  });
}
