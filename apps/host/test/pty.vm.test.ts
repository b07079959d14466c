/**
 * Issue 12 §1 in a real guest: `vmlink exec -it` over host<->guest vsock (hvsock:) and
 * over virtio-serial, one boot. The CLI runs in a pseudo-terminal this test opens with
 * the addon (test/terminal-harness.ts); the agent in the guest opens its own with the
 * same addon. Each transport: the size at start, a resize, Ctrl-C into a sleep, the exit
 * code, our terminal's modes restored.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTestVm, type GuestVm } from '../src/testvm.js';
import { GUEST_CLI, HOST_CLI } from './helpers.js';
import { freshTerminalModes, runInTerminal } from './terminal-harness.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const PORT = 'org.vmlink.agent.0';
const LOG = '/tmp/vmlink-agent.log';
const AGENT_VSOCK_PORT = 1024;
/** busybox ash asks for the cursor position (ESC [6n) after its prompt; nobody answers here. */
const PROMPT = new RegExp(`[$#] (${String.fromCharCode(0x1b)}\\[6n)?$`);

describe('vmlink exec -it against vmlink-guest in a QEMU guest (vsock and virtio-serial)', () => {
  let vm: GuestVm;

  beforeAll(async () => {
    vm = await (await loadTestVm()).startVm({ share: repoRoot, ports: [PORT], memoryMiB: 1024, timeoutMs: 240_000, vsock: true });
    const agent = ['node', GUEST_CLI, '--listen', `vsock://any:${AGENT_VSOCK_PORT}`, '--listen', `virtio-serial:${PORT}`, '--aio', 'fs', '--allow-exec', 'sh'].join(' ');
    // A terminal needs devpts; mount it where the guest's init did not.
    const script = `[ -e /dev/pts/ptmx ] || { mkdir -p /dev/pts && mount -t devpts -o ptmxmode=666 devpts /dev/pts; }
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
(setsid ${agent} >${LOG} 2>&1 </dev/null &)
for i in $(seq 1 600); do grep -q ' ready ' ${LOG} && exit 0; sleep 0.2; done; exit 1`;
    const started = await vm.run('sh', ['-c', script], { timeoutMs: 180_000 });
    if (started.exitCode !== 0) throw new Error(`agent did not start in the guest:\n${(await vm.run('cat', [LOG])).stdout}`);
  }, 480_000);

  afterAll(async () => {
    await vm?.stop();
  });

  const transports = (): [string, string][] => [
    ['vsock (hvsock:)', `hvsock:${vm.vsockPath ?? ''}:${AGENT_VSOCK_PORT}`],
    ['virtio-serial', `virtio-serial+unix:${vm.portPath(PORT)}`],
  ];

  it('a PTY exec over each transport: size, resize, Ctrl-C, exit code, modes restored', async () => {
    const baseline = freshTerminalModes();
    for (const [name, uri] of transports()) {
      const term = runInTerminal(process.execPath, [HOST_CLI, 'exec', '-it', uri, '--timeout', '60000', '--', 'sh'], { cols: 100, rows: 30 });
      try {
        await term.until(PROMPT);
        let mark = term.screen().length;
        term.type('stty size\r');
        expect(await term.until(/\d+ \d+\r+\n/, mark), name).toContain('30 100');

        mark = term.screen().length;
        // Its own job (sh -c): a Ctrl-C landing while the interactive shell forks the next
        // stty/sleep would be lost to the loop, which then runs on.
        term.type("sh -c 'while :; do stty size; sleep 0.2; done'\r");
        await term.until('30 100', mark);
        term.resize(120, 40);
        await term.until('40 120', mark);
        term.type('\x03');
        await term.until(PROMPT, term.screen().lastIndexOf('40 120'));

        mark = term.screen().length;
        term.type("sh -c 'echo sleep-$$-runs; exec sleep 1000'\r");
        await term.until(/sleep-\d+-runs/, mark);
        term.type('\x03');
        mark = term.screen().length;
        term.type('echo status-$?\r');
        expect(await term.until(/status-\d+/, mark), name).toMatch(/status-130/);

        term.type('exit 7\r');
        expect(await term.exited, `${name}: ${term.screen()}`).toEqual({ code: 7, signal: null });
        expect(term.modes().equals(baseline), name).toBe(true);
      } finally {
        term.close();
      }
    }
    expect((await vm.run('cat', [LOG])).stdout).toMatch(/pty=100x30/);
  }, 240_000);
});

