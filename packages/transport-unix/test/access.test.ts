import { once } from 'node:events';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { Connection } from '@vmlink/transport';
import { unix } from '@vmlink/transport-unix';
import { killChild, makeStaleSocket, startChild } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-unix-access-'));
let counter = 0;
const freshPath = (): string => join(dir, `a${counter++}.sock`);
const transport = unix();
const transportModule = JSON.stringify(new URL('../dist/index.cjs', import.meta.url).pathname);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const modeOf = (path: string): number => lstatSync(path).mode & 0o7777;
/** No private bind directory (a dot-name from mkdtemp) left behind in `where`. */
const expectNoPrivateDirs = (where = dir): void => {
  expect(readdirSync(where).filter((name) => name.startsWith('.'))).toEqual([]);
};

async function echoOnce(uri: string): Promise<string> {
  const connection = await transport.dial(uri);
  connection.end('ping');
  const chunks: Buffer[] = [];
  for await (const chunk of connection) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('peer credentials (SO_PEERCRED)', () => {
  it.each([
    ['a filesystem socket', () => `unix:${freshPath()}`],
    ['an abstract socket', () => `unix:@vmlink-peer-${process.pid}-${counter++}`],
  ])('on %s: accepted Connections carry the dialing process, dialed ones the listening process', async (_, fresh) => {
    const uri = fresh();
    await using listener = await transport.listen(uri);
    const accepted = once(listener, 'connection') as Promise<[Connection]>;
    // Another process dials: its pid, not ours, must show up on the accepted Connection.
    const { child } = await startChild(
      `const c = require('net').createConnection(${JSON.stringify(uri.slice(5).replace(/^@/, '\0'))}, () => console.log('connected')); c.on('error', () => {});`,
    );
    try {
      const [server] = await accepted;
      expect(server.peer).toEqual({ uid: process.getuid!(), gid: process.getgid!(), pid: child.pid });
      expect(Object.isFrozen(server.peer)).toBe(true);
      server.destroy();
    } finally {
      await killChild(child);
    }

    // And a Connection we dial names the process that listens (here: another process).
    const path = freshPath();
    const { child: serverChild } = await startChild(
      `require(${transportModule}).unix().listen('unix:${path}').then(() => console.log('up'))`,
    );
    try {
      const client = await transport.dial(`unix:${path}`);
      expect(client.peer).toEqual({ uid: process.getuid!(), gid: process.getgid!(), pid: serverChild.pid });
      client.destroy();
    } finally {
      await killChild(serverChild);
    }
  });
});

describe('socket file permissions', () => {
  it('the socket file is 0600 even under umask 000, and no private bind directory is left', async () => {
    const path = freshPath();
    const { child } = await startChild(
      `require(${transportModule}).unix().listen('unix:${path}').then(() => console.log('up'))`,
      '000',
    );
    try {
      expect(lstatSync(path).isSocket()).toBe(true);
      expect(modeOf(path)).toBe(0o600);
      expect(await echoOnceRaw(path)).toBe(true);
      expectNoPrivateDirs();
    } finally {
      await killChild(child);
    }
  });

  it('options.mode sets other bits (0660) exactly', async () => {
    const path = freshPath();
    await using listener = await transport.listen(`unix:${path}`, { mode: 0o660 });
    expect(modeOf(path)).toBe(0o660);
    expect(listener.address()).toBe(`unix:${path}`);
  });

  it('unix({ mode }) sets the default of every listen()', async () => {
    const path = freshPath();
    await using _listener = await unix({ mode: 0o640 }).listen(`unix:${path}`);
    expect(modeOf(path)).toBe(0o640);
  });

  it('bad mode values are typed errors naming the value', async () => {
    await expect(transport.listen(`unix:${freshPath()}`, { mode: '600' as unknown as number })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(transport.listen(`unix:${freshPath()}`, { mode: 0o1000 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('512') });
    expect(() => unix({ reclaimStale: 'yes' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('a path at the 107-byte sun_path limit binds though its private name would not fit', async () => {
    // The private name is <dir>/.XXXXXX/s: 9 bytes longer than <dir>/x.
    const deep = join(dir, 'd'.repeat(105 - dir.length - 1));
    mkdirSync(deep);
    const path = join(deep, 'x');
    expect(Buffer.byteLength(path)).toBe(107);
    await using listener = await transport.listen(`unix:${path}`);
    expect(modeOf(path)).toBe(0o600);
    listener.on('connection', (c: Connection) => c.pipe(c));
    expect(await echoOnce(`unix:${path}`)).toBe('ping');
    expectNoPrivateDirs(deep);
    await listener.close();
    expect(readdirSync(deep)).toEqual([]);
  });

  it('close() removes the socket file, but not a socket another server put there since', async () => {
    const path = freshPath();
    const listener = await transport.listen(`unix:${path}`);
    await listener.close();
    expect(() => lstatSync(path)).toThrow(expect.objectContaining({ code: 'ENOENT' }));

    const old = await transport.listen(`unix:${path}`);
    unlinkSync(path); // someone removed ours and a new server took the name
    await using _newer = await transport.listen(`unix:${path}`);
    await old.close();
    expect(lstatSync(path).isSocket()).toBe(true);
  });

  it('listening where the directory does not exist fails with ENOENT naming the path', async () => {
    const path = join(dir, 'missing', 'x.sock');
    await expect(transport.listen(`unix:${path}`)).rejects.toMatchObject({ code: 'ENOENT', syscall: 'listen', address: path, message: expect.stringContaining(path) });
  });
});

/** Connect with plain node:net: true when the socket accepts. */
async function echoOnceRaw(path: string): Promise<boolean> {
  const { createConnection } = await import('node:net');
  const socket = createConnection({ path });
  try {
    await once(socket, 'connect');
    return true;
  } finally {
    socket.destroy();
  }
}

describe('stale-socket reclaim', () => {
  it('without reclaimStale a stale socket is EADDRINUSE and stays', async () => {
    const path = freshPath();
    await makeStaleSocket(path);
    await expect(transport.listen(`unix:${path}`)).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'listen', address: path });
    expect(lstatSync(path).isSocket()).toBe(true);
  });

  it('reclaimStale: a socket nobody answers on (its server was SIGKILLed) is replaced', async () => {
    const path = freshPath();
    await makeStaleSocket(path);
    const staleInode = lstatSync(path).ino;
    await using listener = await transport.listen(`unix:${path}`, { reclaimStale: true });
    listener.on('connection', (c: Connection) => c.pipe(c));
    expect(lstatSync(path).ino).not.toBe(staleInode);
    expect(await echoOnce(`unix:${path}`)).toBe('ping');
  });

  it('reclaimStale never removes a live socket: EADDRINUSE, and the live server keeps serving', async () => {
    const path = freshPath();
    const live = createServer((s) => s.pipe(s)).listen(path);
    await once(live, 'listening');
    try {
      await expect(transport.listen(`unix:${path}`, { reclaimStale: true })).rejects.toMatchObject({
        code: 'EADDRINUSE',
        message: expect.stringContaining('a server answers on it'),
      });
      expect(await echoOnce(`unix:${path}`)).toBe('ping');
    } finally {
      live.close();
    }
  });

  it('reclaimStale never removes a regular file (ENOTSOCK, content intact)', async () => {
    const path = freshPath();
    writeFileSync(path, 'precious');
    await expect(transport.listen(`unix:${path}`, { reclaimStale: true })).rejects.toMatchObject({
      code: 'ENOTSOCK',
      address: path,
      message: expect.stringContaining('a regular file'),
    });
    expect(readFileSync(path, 'utf8')).toBe('precious');
    expectNoPrivateDirs();
  });

  it('reclaimStale never removes a symlink, even one pointing at a stale socket', async () => {
    const stale = freshPath();
    await makeStaleSocket(stale);
    const path = freshPath();
    symlinkSync(stale, path);
    await expect(transport.listen(`unix:${path}`, { reclaimStale: true })).rejects.toMatchObject({
      code: 'ENOTSOCK',
      message: expect.stringContaining('a symbolic link'),
    });
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
    expect(lstatSync(stale).isSocket()).toBe(true);
  });

  it('reclaimStale never removes a directory (or its contents)', async () => {
    const path = freshPath();
    mkdirSync(path);
    writeFileSync(join(path, 'inside'), 'x');
    await expect(transport.listen(`unix:${path}`, { reclaimStale: true })).rejects.toMatchObject({
      code: 'ENOTSOCK',
      message: expect.stringContaining('a directory'),
    });
    expect(readFileSync(join(path, 'inside'), 'utf8')).toBe('x');
  });

  it('reclaimStale never removes a FIFO', async () => {
    const path = freshPath();
    execFileSync('mkfifo', [path]);
    await expect(transport.listen(`unix:${path}`, { reclaimStale: true })).rejects.toMatchObject({ code: 'ENOTSOCK' });
    expect(lstatSync(path).isFIFO()).toBe(true);
  });

  it('an abstract name in use is EADDRINUSE (never stale), with or without reclaimStale', async () => {
    const uri = `unix:@vmlink-inuse-${process.pid}-${counter++}`;
    await using _first = await transport.listen(uri);
    await expect(transport.listen(uri, { reclaimStale: true })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('unix({ reclaimStale: true }) makes it the default; a listen option overrides it', async () => {
    const path = freshPath();
    await makeStaleSocket(path);
    const reclaiming = unix({ reclaimStale: true });
    await expect(reclaiming.listen(`unix:${path}`, { reclaimStale: false })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await using _listener = await reclaiming.listen(`unix:${path}`);
    expect(modeOf(path)).toBe(0o600);
  });
});
