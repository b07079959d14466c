// The test helper that tells when a Unix socket listens (/proc/net/unix), on real sockets.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isListening, untilListening } from './unix-listening.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-unix-listening-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('isListening / untilListening (test helper)', () => {
  it('true while a server listens on the path, false before and after', async () => {
    const path = join(dir, 'a.sock');
    expect(isListening(path)).toBe(false);
    const server = createServer();
    server.listen(path);
    await untilListening(path);
    expect(isListening(path)).toBe(true);
    server.close();
    await once(server, 'close');
    expect(isListening(path)).toBe(false);
  });

  it('untilListening gives up naming the path', async () => {
    const path = join(dir, 'never.sock');
    await expect(untilListening(path, 50)).rejects.toThrow(path);
  });
});
