// Runs INSIDE the guest: dial vsock://2:PORT with @vmlink/transport-vsock, send SIZE
// pattern bytes, half-close, read everything back; print "<sent sha256> <received sha256>".
import { createHash } from 'node:crypto';

import { vsock } from '@vmlink/transport-vsock';

const [port, size] = process.argv.slice(2).map(Number);
const payload = Buffer.alloc(size);
for (let i = 0; i < size; i++) payload[i] = (i * 7 + 13) & 0xff;
const connection = await vsock().dial(`vsock://2:${port}`, { timeout: 30_000 });
const received = createHash('sha256');
connection.on('data', (chunk) => received.update(chunk));
const ended = new Promise((resolve, reject) => {
  connection.once('end', resolve);
  connection.once('error', reject);
});
connection.end(payload);
await ended;
connection.destroy();
process.stdout.write(`${createHash('sha256').update(payload).digest('hex')} ${received.digest('hex')}\n`);
