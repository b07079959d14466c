import { createHash } from 'node:crypto';
import type { Connection, Listener } from '@vmlink/transport';

/**
 * Take the listener's next Connection, hash what it sends until its half-close, then
 * answer "<sha256 hex>\n" on our still-open side and end. Resolves with the digest.
 */
export function replyWithSha256(listener: Listener): Promise<string> {
  return new Promise((resolve, reject) => {
    listener.once('connection', (connection: Connection) => {
      const hash = createHash('sha256');
      connection.on('data', (chunk: Buffer) => hash.update(chunk));
      connection.once('error', reject);
      connection.once('end', () => {
        const digest = hash.digest('hex');
        connection.end(`${digest}\n`); // the peer half-closed; it still reads our reply
        resolve(digest);
      });
    });
  });
}
