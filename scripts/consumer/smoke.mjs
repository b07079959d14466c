// Runs in a fresh project that installed the packed tarballs (scripts/consumer-test.mjs):
// ESM imports of every package and one real call each. Prints one line per package.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const scratch = mkdtempSync(join(tmpdir(), 'vmlink-consumer-'));
const require = createRequire(import.meta.url);
const bytes = Buffer.from('vmlink consumer test: bytes on disk\n'.repeat(128));
const dataFile = join(scratch, 'data.bin');
writeFileSync(dataFile, bytes);

/** Reads the whole data file through an @vmlink/aio backend and checks the bytes. */
async function readThrough(backend) {
  const file = await backend.open(dataFile, 'r');
  const buffer = Buffer.alloc(bytes.length + 100);
  const n = await file.read(buffer, 0);
  assert.equal(n, bytes.length);
  assert.ok(buffer.subarray(0, n).equals(bytes));
  await file.close();
  await backend.close();
  return n;
}

const checks = {
  async '@vmlink/native'() {
    const { loadBinding, isAvailable } = await import('@vmlink/native');
    assert.equal(isAvailable(), true);
    assert.equal(loadBinding().errnoName(111), 'ECONNREFUSED');
    const root = join(require.resolve('@vmlink/native'), '..');
    const mapped = readFileSync('/proc/self/maps', 'utf8').split('\n').map((line) => line.split(/\s+/)[5] ?? '').filter((file) => file.endsWith('.node'));
    const prebuild = mapped.find((file) => file.startsWith(join(root, 'prebuilds', `linux-${process.arch}`)));
    assert.ok(prebuild, `the addon is not mapped from its prebuild (mapped: ${mapped.join(', ')})`);
    assert.equal(existsSync(join(root, 'build')), false, 'the install built the addon from source');
    return `loaded ${prebuild.slice(root.length + 1)}`;
  },
  async '@vmlink/errors'() {
    const { validateInteger } = await import('@vmlink/errors');
    assert.throws(() => validateInteger(7.5, 'size', 0, 10), { code: 'ERR_OUT_OF_RANGE' });
    return 'validateInteger(7.5) -> ERR_OUT_OF_RANGE';
  },
  async '@vmlink/aio'() {
    const { createBackend } = await import('@vmlink/aio');
    const backend = await createBackend('auto');
    const picked = `${backend.selection?.picked} (${backend.selection?.reason})`;
    assert.equal(backend.name, 'threadpool', `createBackend('auto') picked ${picked}`);
    return `auto picked ${picked}, read ${await readThrough(backend)} bytes`;
  },
  async '@vmlink/aio-threadpool'() {
    const { createThreadPoolBackend } = await import('@vmlink/aio-threadpool');
    return `read ${await readThrough(createThreadPoolBackend({ threads: 2 }))} bytes on the addon's threads`;
  },
  async '@vmlink/aio-iosubmit'() {
    const { createIoSubmitBackend } = await import('@vmlink/aio-iosubmit');
    if (process.env.VMLINK_CONSUMER_UNDER_QEMU === '1') {
      // qemu-user (7.2) does not emulate io_setup: the addon must still report it as a coded error.
      await assert.rejects(createIoSubmitBackend(), { code: 'ENOSYS', syscall: 'io_setup' });
      return 'io_setup -> ENOSYS (qemu-user has no Linux AIO; io_submit itself not exercised)';
    }
    return `read ${await readThrough(await createIoSubmitBackend())} bytes through io_submit`;
  },
  async '@vmlink/transport'() {
    const { createTransports } = await import('@vmlink/transport');
    const { unix } = await import('@vmlink/transport-unix');
    const { RpcPeer } = await import('@vmlink/rpc');
    const transports = createTransports([unix()]);
    const uri = `unix:${join(scratch, 'rpc.sock')}`;
    const listener = await transports.listen(uri);
    listener.on('connection', (connection) => new RpcPeer(connection).handle('add', ({ a, b }) => a + b));
    const client = new RpcPeer(await transports.dial(uri));
    const sum = await client.call('add', { a: 40, b: 2 }, { timeout: 10_000 });
    assert.equal(sum, 42);
    await client.close();
    await listener.close();
    return `RPC add over ${uri} -> ${sum}`;
  },
  async '@vmlink/transport-unix'() {
    const { parseUnixAddress } = await import('@vmlink/transport-unix');
    assert.throws(() => parseUnixAddress('unix://x'), { code: 'ERR_VMLINK_INVALID_ADDRESS' });
    return 'parseUnixAddress(unix://x) -> ERR_VMLINK_INVALID_ADDRESS (dial/listen: @vmlink/transport)';
  },
  async '@vmlink/rpc'() {
    const { encodeFrame, FrameDecoder } = await import('@vmlink/rpc');
    assert.equal(typeof encodeFrame, 'function');
    assert.equal(typeof FrameDecoder, 'function');
    return 'frames (RPC call: see @vmlink/transport)';
  },
  async '@vmlink/transport-vsock'() {
    const { parseVsockAddress } = await import('@vmlink/transport-vsock');
    const address = parseVsockAddress('vsock://3:1024');
    assert.equal(address.cid, 3);
    assert.equal(address.port, 1024);
    return 'parseVsockAddress(vsock://3:1024)';
  },
  async '@vmlink/transport-hvsock'() {
    const { parseHvsockAddress } = await import('@vmlink/transport-hvsock');
    const address = parseHvsockAddress('hvsock:/run/v.sock:1024');
    assert.equal(address.port, 1024);
    return 'parseHvsockAddress(hvsock:/run/v.sock:1024)';
  },
  async '@vmlink/transport-virtio-serial'() {
    const { virtioSerial } = await import('@vmlink/transport-virtio-serial');
    const { createTransports } = await import('@vmlink/transport');
    const transports = createTransports([virtioSerial()]);
    const missing = `virtio-serial+unix:${join(scratch, 'absent.sock')}`;
    await assert.rejects(transports.dial(missing), { code: 'ENOENT' });
    return `dial ${missing.slice(0, 19)}... -> ENOENT`;
  },
  async '@vmlink/vsock'() {
    const { isSupported, localCid } = await import('@vmlink/vsock');
    if (!isSupported()) return 'isSupported() false here (no AF_VSOCK in this kernel)';
    try {
      return `localCid() -> ${localCid()}`;
    } catch (error) {
      assert.notEqual(error.code, 'ERR_VMLINK_NATIVE_NOT_BUILT');
      assert.match(error.code, /^E[A-Z]+$/);
      return `localCid() -> ${error.code} (addon loaded; no vsock device here)`;
    }
  },
  async '@vmlink/vhost-user-vsock'() {
    const { qemuVsockArgs } = await import('@vmlink/vhost-user-vsock');
    const args = qemuVsockArgs({ socket: join(scratch, 'dev.sock'), memoryMiB: 256 });
    assert.ok(args.some((arg) => arg.includes('vhost-user-vsock')));
    return `qemuVsockArgs -> ${args.length} QEMU arguments`;
  },
  async '@vmlink/testvm'() {
    const { cacheRoot } = await import('@vmlink/testvm');
    assert.equal(cacheRoot({ XDG_CACHE_HOME: '/x' }).startsWith('/x'), true);
    return 'cacheRoot()';
  },
  async '@vmlink/compliance'() {
    const transport = await import('@vmlink/compliance/transport');
    const aio = await import('@vmlink/compliance/aio');
    const suites = [transport, aio].map((suite) => Object.keys(suite).find((name) => name.startsWith('describe') && typeof suite[name] === 'function'));
    assert.ok(suites.every(Boolean), 'a describe* suite function in ./transport and ./aio');
    return `${suites.join(', ')} (suites run inside vitest)`;
  },
  async '@vmlink/agent-protocol'() {
    const { encodeExecRecord, ExecRecordDecoder, ExecRecordTag } = await import('@vmlink/agent-protocol');
    const tag = Object.values(ExecRecordTag).find((value) => typeof value === 'number');
    const records = new ExecRecordDecoder().push(encodeExecRecord(tag, Buffer.from('hi')));
    assert.equal(records.length, 1);
    return 'exec record round trip';
  },
};

// Every command a package installs, the way its README says to run it: `npx NAME --help`.
for (const { package: name, command } of JSON.parse(readFileSync(new URL('./commands.json', import.meta.url), 'utf8'))) {
  checks[`npx ${command}`] = async () => {
    const result = spawnSync('npx', ['--no', command, '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(result.status, 0, `npx ${command} --help exited ${result.status}: ${result.stderr}`);
    const usage = `${result.stdout}${result.stderr}`;
    assert.match(usage, /^Usage/m, `npx ${command} --help printed no usage: ${usage.slice(0, 200)}`);
    return `--help from ${name}: ${usage.match(/^Usage.*$/m)[0]}`;
  };
}

const only = process.argv.slice(2);
let failed = 0;
try {
  for (const [name, check] of Object.entries(checks)) {
    if (only.length > 0 && !only.includes(name)) continue;
    try {
      console.log(`  ok   ${name}: ${await check()}`);
    } catch (error) {
      failed++;
      console.log(`  FAIL ${name}: ${error.stack ?? error}`);
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
process.exitCode = failed === 0 ? 0 : 1;
