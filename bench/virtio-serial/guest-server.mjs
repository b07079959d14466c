// Guest half of bench/virtio-serial/run.mjs: listens on virtio-serial:NAME. The first
// line of each Connection picks the job:
//   rpc           an RpcPeer: 'echo' returns its params; 'read' streams {size} bytes as a body
//   echo          raw Connection echo
//   send <n>      raw Connection: write n bytes, then end
import { RpcPeer, withBody } from '@vmlink/rpc';
import { virtioSerial } from '@vmlink/transport-virtio-serial';

const name = process.argv[2];
const CHUNK = Buffer.alloc(64 * 1024, 0x5a);

async function* bytes(size) {
  for (let left = size; left > 0; left -= CHUNK.length) yield left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
}

function firstLine(connection) {
  return new Promise((resolve) => {
    let text = Buffer.alloc(0);
    const onData = (chunk) => {
      text = Buffer.concat([text, chunk]);
      const newline = text.indexOf(0x0a);
      if (newline < 0) return;
      connection.off('data', onData);
      connection.pause();
      if (newline + 1 < text.length) connection.unshift(text.subarray(newline + 1));
      resolve(text.subarray(0, newline).toString('latin1'));
    };
    connection.on('data', onData);
  });
}

const listener = await virtioSerial().listen(`virtio-serial:${name}`);
listener.on('connection', async (connection) => {
  connection.on('error', () => {});
  const [command, arg] = (await firstLine(connection)).split(' ');
  if (command === 'rpc') {
    const peer = new RpcPeer(connection);
    peer.handle('echo', (params) => params);
    peer.handle('read', ({ size }) => withBody({ size }, bytes(size)));
    connection.resume(); // firstLine() paused it; a 'data' listener alone does not resume a paused stream
  } else if (command === 'echo') {
    connection.pipe(connection);
  } else if (command === 'send') {
    for await (const chunk of bytes(Number(arg))) if (!connection.write(chunk)) await new Promise((r) => connection.once('drain', r));
    connection.end();
  }
});
console.log(`listening pid ${process.pid}`);
