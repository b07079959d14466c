// Echo server in its own process for bench/vsock/guest.mjs: the ping-pong then crosses
// processes, as real vsock traffic does, instead of looping inside one event loop.
//   node echo-peer.mjs vsock|tcp   -> prints the port on stdout, echoes until killed
import net from 'node:net';

import { createServer } from '@vmlink/vsock';

const transport = process.argv[2];
const echo = (socket) => {
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('error', () => {}); // the client resets at the end of its run
};
if (transport === 'vsock') {
  const server = createServer(echo);
  server.listen({}, () => console.log(server.address().port));
} else if (transport === 'tcp') {
  const server = net.createServer({ noDelay: true }, echo);
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
} else {
  console.error(`usage: echo-peer.mjs vsock|tcp (got ${transport})`);
  process.exit(2);
}
