import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vitest from 'vitest';
import { describeTransportCompliance, servePeer } from '@vmlink/compliance/transport';
import { unix } from '@vmlink/transport-unix';
import { hvsock } from '@vmlink/transport-hvsock';
import { HybridVsockMuxerDouble } from './hybrid-vsock-muxer-double.js';

// The transport compliance suite against hvsock, with the in-process muxer TEST DOUBLE as
// the VMM: dials go CONNECT -> OK -> bridged bytes; the compliance peer plays the guest's
// listener on one port; the suite's own hvsock listeners are reached through the muxer's
// default route (guest port P -> host <uds>_P), i.e. through both halves of the plugin.
const dir = mkdtempSync(join(tmpdir(), 'vmlink-hvsock-compliance-'));
const udsPath = join(dir, 'v.sock');
const transport = hvsock();
const PEER_PORT = 5000;
const STALLED_PORT = 5001;
const NOBODY_PORT = 5002;
let nextPort = 6000;
let muxer: HybridVsockMuxerDouble | undefined;

describeTransportCompliance(
  {
    transport,
    async startPeer() {
      muxer = await HybridVsockMuxerDouble.start(udsPath);
      muxer.stalledPorts.add(STALLED_PORT);
      // The guest's listener on PEER_PORT: a plain Unix listener serving the peer protocol.
      const guestPath = join(dir, 'guest-5000.sock');
      const guest = await unix().listen(`unix:${guestPath}`);
      servePeer(guest);
      muxer.routes.set(PEER_PORT, guestPath);
      return {
        address: `hvsock:${udsPath}:${PEER_PORT}`,
        close: async () => {
          await guest.close();
          await muxer?.close();
        },
      };
    },
    listenAddress: () => `hvsock:${udsPath}:${nextPort++}`,
    unreachableAddress: () => `hvsock:${udsPath}:${NOBODY_PORT}`,
    stalledAddress: async () => ({ address: `hvsock:${udsPath}:${STALLED_PORT}`, close: async () => {} }),
    child: { module: '@vmlink/transport-hvsock', factory: 'hvsock' },
    teardown: async () => rmSync(dir, { recursive: true, force: true }),
  },
  vitest,
);
