/** vmlink-vsockd: serve virtio-vsock devices to QEMU over vhost-user until SIGINT/SIGTERM. */
import { createVsockDevice, type VsockDevice } from './device.js';
import { parseCliArgs, USAGE } from './cli-args.js';

async function main(argv: readonly string[]): Promise<number> {
  let args;
  try {
    args = parseCliArgs(argv);
  } catch (err) {
    process.stderr.write(`vmlink-vsockd: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // Signal handlers first: a supervisor may send SIGTERM as soon as it reads 'listening',
  // which can happen before the next line of ours runs (it did, under load).
  const stopRequested = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const devices: VsockDevice[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(devices.map((d) => d.close()));
  };
  try {
    for (const vm of args.vms) {
      const dev = await createVsockDevice(vm);
      const tag = `[cid ${dev.guestCid}]`;
      const say = (line: string): void => {
        process.stderr.write(`vmlink-vsockd ${tag} ${line}\n`);
      };
      dev.on('qemu-connected', () => say('QEMU connected'));
      dev.on('qemu-disconnected', (why) => say(`QEMU disconnected: ${why}`));
      dev.on('driver-ready', () => say('guest driver ready'));
      dev.on('reset', (why) => say(`driver reset: ${why}`));
      dev.on('log', (line) => say(line));
      devices.push(dev);
      say(`listening: vhost-user ${dev.socket}, hybrid vsock ${dev.udsPath}`);
    }
  } catch (err) {
    process.stderr.write(`vmlink-vsockd: ${(err as Error).message}\n`);
    await closeAll();
    return 1;
  }
  await stopRequested;
  await closeAll();
  return 0;
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
