import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hvsock, type HvsockConnection } from '@vmlink/transport-hvsock';
import { replyWithSha256 } from './sha-reply.js';
import { untilListening } from './unix-listening.js';

// Peers nobody here wrote, on the host: socat + sh playing the VMM's two roles. A shell
// `read` takes the CONNECT line byte by byte (it never reads past the newline either).
const dir = mkdtempSync(join(tmpdir(), 'vmlink-hvsock-socat-'));
const transport = hvsock();
const children: ChildProcess[] = [];
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function socat(args: string[]): ChildProcess {
  const child = spawn('socat', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  return child;
}

describe('hvsock against socat', () => {
  it('dial: socat UNIX-LISTEN + sh as the VMM (reads CONNECT with `read`, answers OK 2^30, then echoes 1 MiB)', async () => {
    const uds = join(dir, 'v.sock');
    const commands = join(dir, 'commands');
    const script = join(dir, 'vmm.sh');
    writeFileSync(script, `read -r cmd\nprintf '%s\\n' "$cmd" >> ${commands}\nprintf 'OK 1073741824\\n'\nexec cat\n`);
    socat([`UNIX-LISTEN:${uds},fork`, `EXEC:/bin/sh ${script}`]);
    await untilListening(uds);
    const connection = (await transport.dial(`hvsock:${uds}:52`, { timeout: 30_000 })) as HvsockConnection;
    expect(connection.hostPort).toBe(2 ** 30);
    const payload = randomBytes(1024 * 1024);
    const chunks: Buffer[] = [];
    connection.on('data', (chunk: Buffer) => chunks.push(chunk));
    connection.end(payload);
    await once(connection, 'end');
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(payload));
    expect(readFileSync(commands, 'utf8')).toBe('CONNECT 52\n');
    connection.destroy();
  }, 60_000);

  it('listen: socat UNIX-CONNECT to <uds>_<PORT> (the VMM delivering a guest connect) sends 1 MiB and reads our reply', async () => {
    const uds = join(dir, 'w.sock');
    await using listener = await transport.listen(`hvsock:${uds}:1024`);
    const input = join(dir, 'input');
    const output = join(dir, 'output');
    const payload = randomBytes(1024 * 1024);
    writeFileSync(input, payload);
    const answered = replyWithSha256(listener);
    const client = socat(['-t', '30', `OPEN:${input}!!CREATE:${output}`, `UNIX-CONNECT:${uds}_1024`]);
    const [code] = (await once(client, 'exit')) as [number];
    expect(code).toBe(0);
    expect(await answered).toBe(sha256(payload));
    expect(readFileSync(output, 'utf8')).toBe(`${sha256(payload)}\n`);
  }, 60_000);
});
