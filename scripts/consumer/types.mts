// Type-checked in the consumer project with NodeNext (as .mts) and Bundler resolution:
// every entry point resolves to declarations and their public types are usable.
import { loadBinding, type NativeBinding } from '@vmlink/native';
import { createBackend, type AioBackend, type BackendSelection } from '@vmlink/aio';
import { createThreadPoolBackend } from '@vmlink/aio-threadpool';
import { createIoSubmitBackend } from '@vmlink/aio-iosubmit';
import { validateInteger, VmlinkError } from '@vmlink/errors';
import { createTransports, type Connection, type Transports } from '@vmlink/transport';
import { unix } from '@vmlink/transport-unix';
import { vsock, parseVsockAddress } from '@vmlink/transport-vsock';
import { hvsock } from '@vmlink/transport-hvsock';
import { virtioSerial } from '@vmlink/transport-virtio-serial';
import { RpcPeer } from '@vmlink/rpc';
import { createServer, localCid } from '@vmlink/vsock';
import { qemuVsockArgs } from '@vmlink/vhost-user-vsock';
import { startVm } from '@vmlink/testvm';
import * as transportSuite from '@vmlink/compliance/transport';
import * as aioSuite from '@vmlink/compliance/aio';
import { METHODS, type MethodName } from '@vmlink/agent-protocol';
import { Agent } from 'vmlink-guest';

const binding: NativeBinding = loadBinding();
const errno: string = binding.errnoName(2);
const backend: Promise<AioBackend> = createBackend('auto');
const selection: Promise<BackendSelection | undefined> = backend.then((b) => b.selection);
const transports: Transports = createTransports([unix(), vsock(), hvsock(), virtioSerial()]);
async function rpcCall(connection: Connection): Promise<unknown> {
  return new RpcPeer(connection).call('ping', {});
}
const cid: number = parseVsockAddress('vsock://3:1024').cid;
const method: MethodName | undefined = (METHODS as readonly MethodName[])[0];
const n: number = validateInteger(1, 'n', 0, 2);
const isError: boolean = new Error('x') instanceof VmlinkError;
const args: string[] = qemuVsockArgs({ socket: '/run/x.sock', memoryMiB: 256 });

export const used = [
  errno, selection, transports, rpcCall, cid, method, n, isError, args,
  createThreadPoolBackend, createIoSubmitBackend, createServer, localCid, startVm, transportSuite, aioSuite, Agent,
];
