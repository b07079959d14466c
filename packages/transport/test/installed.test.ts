import { describe, expect, it } from 'vitest';
import { loadInstalledTransports } from '../src/index.js';

describe('loadInstalledTransports (real plugins from the workspace)', () => {
  it('loads every first-party plugin installed here and routes their schemes', async () => {
    const { transports, failures } = await loadInstalledTransports();
    expect(failures).toEqual([]);
    expect(transports.resolve('unix:/tmp/x.sock').transport.name).toBe('unix');
    expect(transports.resolve('vsock://1:1024').transport.name).toBe('vsock');
    expect(transports.resolve('virtio-serial+unix:/tmp/chardev.sock').transport.name).toBe('virtio-serial');
    expect(transports.resolve('virtio-serial:org.vmlink.agent.0').transport.name).toBe('virtio-serial');
    expect(transports.resolve('hvsock:/run/fc/v.sock:52').transport.name).toBe('hvsock');
  });
});
