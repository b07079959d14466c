/**
 * @vmlink/compliance/transport: the checks every @vmlink/transport plugin runs from its
 * own tests, under vitest (host) or node:test (inside a guest VM).
 */
export { describeTransportCompliance } from './suite.js';
export type { TransportTestSetup } from './setup.js';
export type { TestApi, VitestApi, NodeTestApi, Body } from './runner.js';
export { servePeer, servePeerConnection, startLocalPeer, PEER_COMMANDS, type PeerHandle } from './peer.js';
export type { ChildTransportSpec } from './child.js';
export { patternBytes, sha256 } from './bytes.js';
