// createVsockDevice on real Unix sockets (no guest): listening paths, stale-socket
// reclaim, refusals before a driver exists, close(), and the CLI as a process.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBinding } from '@vmlink/native';
import { createVsockDevice } from '../src/index.js';
import { fdsOpenedSince, openFds } from './helpers/fd-table.js';

const dir = mkdtempSync(join(tmpdir(), 'vmlink-vuv-dev-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const paths = (): { socket: string; udsPath: string } => ({ socket: join(dir, `q${n}.sock`), udsPath: join(dir, `v${n++}.sock`) });

/** A host client's `CONNECT 1234`, and what it got back before the device closed it. */
function refusedReply(udsPath: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const c = connect(udsPath);
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.on('close', () => resolve(got));
    c.write('CONNECT 1234\n');
  });
}

describe('createVsockDevice', () => {
  it('listens on both paths; a host client before any driver is closed without a reply; close() removes the files', async () => {
    // Warm-up: one device with a refused client first, so what the runtime opens lazily
    // is open before the baseline and the fd table is compared exactly (helpers/fd-table.ts).
    const warm = await createVsockDevice({ ...paths(), guestCid: 3 });
    await refusedReply(warm.udsPath);
    await warm.close();
    const before = openFds();
    const p = paths();
    const dev = await createVsockDevice({ ...p, guestCid: 3 });
    expect(statSync(p.socket).isSocket()).toBe(true);
    expect(statSync(p.udsPath).isSocket()).toBe(true);
    expect(await refusedReply(p.udsPath)).toBe('');
    expect(dev.stats()).toMatchObject({ refusedNotReady: 1, qemuAttached: false, driverReady: false });
    await dev.close();
    await dev.close();
    expect(() => statSync(p.socket)).toThrow();
    expect(() => statSync(p.udsPath)).toThrow();
    expect(fdsOpenedSince(before)).toEqual([]);
  });

  it('reclaims a stale socket file, refuses a live one and a non-socket', async () => {
    const p = paths();
    // A stale socket: bound, then its owner died without unlinking it.
    closeSync(loadBinding().unixListen(p.socket));
    expect(statSync(p.socket).isSocket()).toBe(true);
    writeFileSync(join(dir, 'placeholder'), '');
    const live = createServer();
    await new Promise<void>((resolve) => live.listen(p.udsPath, resolve));
    await expect(createVsockDevice({ ...p, guestCid: 3 })).rejects.toMatchObject({ code: 'ERR_VMLINK_VSOCKD_PATH_IN_USE', message: expect.stringContaining(p.udsPath) });
    await new Promise<void>((resolve) => live.close(() => resolve()));
    await expect(createVsockDevice({ socket: join(dir, 'placeholder'), udsPath: p.udsPath, guestCid: 3 })).rejects.toMatchObject({
      code: 'ERR_VMLINK_VSOCKD_PATH_NOT_SOCKET',
    });
    const dev = await createVsockDevice({ ...p, guestCid: 3 }); // the stale p.socket was reclaimed
    expect(statSync(p.socket).isSocket()).toBe(true);
    await dev.close();
  });

  it('two devices in one process cannot share a path; many devices can run side by side', async () => {
    const p = paths();
    const a = await createVsockDevice({ ...p, guestCid: 3 });
    await expect(createVsockDevice({ ...p, guestCid: 4 })).rejects.toMatchObject({ code: 'ERR_VMLINK_VSOCKD_DUPLICATE' });
    const others = await Promise.all(Array.from({ length: 16 }, (_, i) => createVsockDevice({ ...paths(), guestCid: 10 + i })));
    for (const d of [a, ...others]) await d.close();
  });
});

describe('vmlink-vsockd', () => {
  it('serves the --vm groups until SIGTERM, then removes its sockets', async () => {
    const a = paths();
    const b = paths();
    const cli = join(__dirname, '..', 'dist', 'cli.js');
    const child = spawn(process.execPath, [cli, '--vm', `guest-cid=3,socket=${a.socket},uds-path=${a.udsPath}`, '--vm', `guest-cid=4,socket=${b.socket},uds-path=${b.udsPath}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if ((stderr.match(/listening/g) ?? []).length === 2) resolve();
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    expect(statSync(b.udsPath).isSocket()).toBe(true);
    const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`${code} ${signal}`)));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe('0 null');
    expect(() => statSync(a.socket)).toThrow();
    expect(() => statSync(b.udsPath)).toThrow();
  });

  it('exits 2 with the usage on a bad command line, 1 naming the value the device rejects', async () => {
    const usage = spawn(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), '--vm', 'socket=/a'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let usageText = '';
    usage.stderr.on('data', (d: Buffer) => (usageText += d.toString()));
    expect(await new Promise<number | null>((resolve) => usage.once('exit', resolve))).toBe(2);
    expect(usageText).toMatch(/'uds-path' is missing[\s\S]*Usage: vmlink-vsockd/);
    const cli = join(__dirname, '..', 'dist', 'cli.js');
    const child = spawn(process.execPath, [cli, '--vm', 'guest-cid=1,socket=/a,uds-path=/b'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    // guest-cid 1 parses but the device rejects it: exit 1 naming the value.
    expect(code).toBe(1);
    expect(stderr).toMatch(/guestCid/);
  });
});
