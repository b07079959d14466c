// Guest-side checks of the virtio-serial listener, run inside the VM by listener.vm.test.ts.
// VS_SPARE_PORT: a port no host uses. VS_BUSY_PORT: a port another guest process holds.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createTransports } from '@vmlink/transport';
import { virtioSerial } from '@vmlink/transport-virtio-serial';

const spare = process.env.VS_SPARE_PORT;
const busy = process.env.VS_BUSY_PORT;
const transport = virtioSerial();

function cpuTicks() {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

describe('virtio-serial guest listener', () => {
  it('listens through the registry; address() is canonical; close() twice is safe and frees the port', async () => {
    const transports = createTransports([virtioSerial()]);
    const listener = await transports.listen(`virtio-serial:${spare}`);
    assert.equal(listener.address(), `virtio-serial:${spare}`);
    assert.equal(transport.parse(listener.address()).uri, listener.address());
    await listener.close();
    await listener.close();
    assert.equal(listener.closed, true);
    const again = await transport.listen(`virtio-serial:${spare}`);
    await again.close();
  });

  it('a second listen on a port this process holds fails with EBUSY', async () => {
    const listener = await transport.listen(`virtio-serial:${spare}`);
    try {
      await assert.rejects(transport.listen(`virtio-serial:${spare}`), (e) => e.code === 'EBUSY' && e.syscall === 'open');
    } finally {
      await listener.close();
    }
  });

  it('a listen on a port another process holds fails with EBUSY', async () => {
    await assert.rejects(transport.listen(`virtio-serial:${busy}`), (e) => e.code === 'EBUSY' && e.syscall === 'open');
  });

  it('a port that does not exist fails with ENOENT naming the device', async () => {
    await assert.rejects(
      transport.listen('virtio-serial:org.vmlink.no-such-port'),
      (e) => e.code === 'ENOENT' && e.message.includes('/dev/virtio-ports/org.vmlink.no-such-port'),
    );
  });

  it('dial on the guest scheme is refused with ERR_VMLINK_UNSUPPORTED_OPERATION (the host starts Connections)', async () => {
    await assert.rejects(transport.dial(`virtio-serial:${spare}`), (e) => e.code === 'ERR_VMLINK_UNSUPPORTED_OPERATION');
  });

  it('no host: the listener waits without spinning (CPU ticks and native wake-ups stay low over 2 s)', async () => {
    const listener = await transport.listen(`virtio-serial:${spare}`);
    try {
      // Waits for the first hang-up to be seen (evidence, not a fixed sleep).
      for (let i = 0; i < 200 && !listener.hostAway; i += 1) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(listener.hostAway, true, 'the port should report the host away');
      // A spinning loop wakes up thousands of times in 2 s (in every window) and burns ~200
      // ticks. Ticks also count V8's background threads (GC, compiling: hundreds of ms under
      // an emulated CPU), so a window with a burst of those is measured again, up to 5 times;
      // wake-ups are the listener's own and must stay low in every window.
      let ticks = Infinity;
      for (let window = 0; window < 5 && ticks > 30; window += 1) {
        const before = { ticks: cpuTicks(), wakeups: listener.wakeups };
        await new Promise((resolve) => setTimeout(resolve, 2000));
        ticks = cpuTicks() - before.ticks;
        const wakeups = listener.wakeups - before.wakeups;
        assert.ok(wakeups <= 5, `the listener woke ${wakeups} times in 2 s with no host`);
      }
      assert.ok(ticks <= 30, `the listener used ${ticks} CPU ticks in each of 5 windows of 2 s with no host`);
    } finally {
      await listener.close();
    }
  });

  it('a process whose listener is unref()ed, or closed, exits on its own', () => {
    for (const ending of ['l.unref()', 'await l.close()']) {
      const script = `import { virtioSerial } from '@vmlink/transport-virtio-serial';
const l = await virtioSerial().listen('virtio-serial:${spare}'); ${ending}; console.log('done');`;
      const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(result.signal, null, `${ending}: the process did not exit on its own (killed)\n${result.stderr}`);
      assert.equal(result.status, 0, `${ending}: ${result.stderr}`);
      assert.match(result.stdout, /done/);
    }
  });
});
