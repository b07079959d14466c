// Runs IN THE GUEST (node, @vmlink/vsock from the shared repo): the guest end of the
// host<->guest tests in ../host-guest.vm.test.ts. One mode per invocation:
//   sink PORT COUNT            accept COUNT connections; each: SHA-256 of every byte until EOF,
//                              answered on the same connection as "<len> <hex>\n"
//   echo PORT COUNT            accept COUNT connections, echo each; exit when all closed
//   source PORT SIZE...        one connection to CID 2 per SIZE: random bytes, EOF, read the
//                              host's "<len> <hex>" answer; print "<size> <ours> <theirs>"
//   halfclose-listen PORT      one connection: read to EOF, then answer "guest read <text>"
//   halfclose-connect PORT     to CID 2: send, shutdown(SHUT_WR), print what arrives after
//   connect PORT               to CID 2: print "connected" or the error code
//   flood PORT                 to CID 2: write forever, discard what arrives
// Listeners print "listening" once they accept, so the host waits for an event, not a time.
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, VMADDR_CID_HOST } from '../../../vsock/dist/index.js';

const [mode, portArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);
const fail = (err) => {
  console.error(`vsock-tool ${mode}: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
};

function serve(count, allowHalfOpen, onConnection) {
  let closed = 0;
  const server = createServer({ allowHalfOpen }, (socket) => {
    socket.on('error', (err) => console.error(`connection error ${err.code}`));
    socket.on('close', () => {
      closed += 1;
      if (closed === count) server.close(() => process.exit(0));
    });
    onConnection(socket);
  });
  server.on('error', fail);
  server.listen({ port, backlog: 2048 }, () => console.log('listening'));
}

function sendRandom(socket, size, hash) {
  let left = size;
  const pump = () => {
    while (left > 0) {
      const chunk = randomBytes(Math.min(left, 1 << 20));
      left -= chunk.length;
      hash.update(chunk);
      if (left === 0) socket.end(chunk);
      else if (!socket.write(chunk)) return socket.once('drain', pump);
    }
  };
  pump();
}

async function source(sizes) {
  for (const size of sizes) {
    const line = await new Promise((resolve, reject) => {
      const hash = createHash('sha256');
      const answer = [];
      const socket = connect({ cid: VMADDR_CID_HOST, port, timeout: 30_000, allowHalfOpen: true }, () => sendRandom(socket, size, hash));
      socket.on('data', (c) => answer.push(c));
      socket.on('end', () => resolve(`${size} ${hash.digest('hex')} ${Buffer.concat(answer).toString().trim()}`));
      socket.on('error', reject);
    });
    console.log(line);
  }
}

switch (mode) {
  case 'sink':
    serve(Number(rest[0]), true, (socket) => {
      const hash = createHash('sha256');
      let length = 0;
      socket.on('data', (c) => {
        length += c.length;
        hash.update(c);
      });
      socket.on('end', () => socket.end(`${length} ${hash.digest('hex')}\n`));
    });
    break;
  case 'echo':
    serve(Number(rest[0]), false, (socket) => socket.pipe(socket));
    break;
  case 'halfclose-listen':
    serve(1, true, (socket) => {
      const got = [];
      socket.on('data', (c) => got.push(c));
      socket.on('end', () => socket.end(`guest read ${Buffer.concat(got).toString()}`));
    });
    break;
  case 'source':
    source(rest.map(Number)).catch(fail);
    break;
  case 'halfclose-connect': {
    const got = [];
    const socket = connect({ cid: VMADDR_CID_HOST, port, timeout: 30_000, allowHalfOpen: true }, () => socket.end('hello from the guest'));
    socket.on('data', (c) => got.push(c));
    socket.on('end', () => console.log(Buffer.concat(got).toString()));
    socket.on('error', fail);
    break;
  }
  case 'connect': {
    const socket = connect({ cid: VMADDR_CID_HOST, port, timeout: 30_000 }, () => {
      console.log('connected');
      socket.destroy();
    });
    socket.on('error', (err) => console.log(err.code));
    break;
  }
  case 'flood': {
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    const socket = connect({ cid: VMADDR_CID_HOST, port, timeout: 30_000 }, () => {
      console.log('connected');
      const pump = () => {
        while (socket.write(chunk));
        socket.once('drain', pump);
      };
      pump();
    });
    socket.resume();
    socket.on('error', fail);
    break;
  }
  default:
    fail(new Error(`unknown mode ${mode}`));
}
