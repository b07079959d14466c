// A vmlink transport plugin for TCP, written from packages/transport/README.md the way a
// third party would: plain ESM JavaScript, only the public API of @vmlink/transport.
import { createConnection, createServer, isIPv4, isIPv6 } from 'node:net';
import {
  dialSocket,
  invalidAddress,
  parseDecimal,
  resolveAddress,
  socketListener,
  splitUriFor,
  validateListenOptions,
  whenListening,
} from '@vmlink/transport';

const SCHEMES = Object.freeze(['tcp']);
const CAPABILITIES = Object.freeze({ multiConnection: true, halfClose: true, messageBoundaries: false, listen: true });
const MAX_BACKLOG = 4096;

/** `tcp://HOST:PORT`: HOST an IPv4 address, `localhost`, or `[IPv6]`; PORT 0..65535 (0: any, to listen). */
export function parseTcpAddress(uri) {
  const { rest } = splitUriFor(uri, SCHEMES);
  const match = /^\/\/(\[[^\]]*\]|[^:/]*):([^:/]*)$/.exec(rest);
  if (!match) throw invalidAddress(uri, 'expected tcp://HOST:PORT');
  const rawHost = match[1];
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  if (!(isIPv4(host) || isIPv6(host) || host === 'localhost')) {
    throw invalidAddress(uri, `host '${rawHost}' is not an IP address or localhost`);
  }
  const port = parseDecimal(match[2], uri, 'port', 0, 65535);
  const shown = isIPv6(host) ? `[${host}]` : host;
  return Object.freeze({ scheme: 'tcp', host, port, uri: `tcp://${shown}:${port}` });
}

function uriOf(host, port) {
  return `tcp://${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

class TcpTransport {
  name = 'tcp';
  schemes = SCHEMES;
  capabilities = CAPABILITIES;

  parse(uri) {
    return parseTcpAddress(uri);
  }

  dial(address, options) {
    let target;
    try {
      target = resolveAddress(address, parseTcpAddress);
    } catch (error) {
      return Promise.reject(error);
    }
    if (target.port === 0) return Promise.reject(invalidAddress(target.uri, 'port 0 cannot be dialed'));
    return dialSocket(this, target.uri, options, {
      open: () => createConnection({ host: target.host, port: target.port, allowHalfOpen: true }),
      // TCP has no kernel-reported identity of the peer (no uid, no CID): peer stays undefined.
      describe: (socket) => ({ localAddress: uriOf(socket.localAddress, socket.localPort), remoteAddress: target.uri }),
    });
  }

  async listen(address, options) {
    const target = resolveAddress(address, parseTcpAddress);
    const { signal, backlog } = validateListenOptions(options, MAX_BACKLOG);
    const server = createServer({ allowHalfOpen: true });
    await whenListening(server, () => server.listen({ host: target.host, port: target.port, backlog }));
    const bound = server.address();
    const uri = uriOf(target.host, bound.port);
    return socketListener(this, server, {
      uri,
      describe: (socket) => ({ localAddress: uri, remoteAddress: uriOf(socket.remoteAddress, socket.remotePort) }),
    }, signal);
  }
}

/** The factory: `createTransports([tcp()])`, or `--transport ./examples/transport-tcp`. */
export function tcp() {
  return new TcpTransport();
}

export default tcp;
