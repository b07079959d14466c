// Guest side of the host<->guest tests: listens on virtio-serial:NAME and serves every
// Connection the host opens. The first line picks the job:
//   echo|send|sink|hold|halfclose ...  the transport compliance peer (@vmlink/compliance)
//   reqs <n>      requests: each line "<id> <size>" is answered "<id> <size bytes of x>\n"
//   flood         writes 1 MiB chunks until the Connection dies (the host does not read)
//   pause         never reads (the host sends more than the guest reads ahead)
//   stats         one JSON line with what this server saw, then end
// It prints "closed N" when Connection N (counted from 1) has closed.
// A first line that is none of these is a stale byte reaching a new Connection: counted.
import { readFileSync } from 'node:fs';
import { servePeerConnection } from '@vmlink/compliance/transport';
import { virtioSerial } from '@vmlink/transport-virtio-serial';

const name = process.argv[2];
if (!name) throw new Error('usage: peer-server.mjs PORT_NAME');

const stats = {
  connections: 0,
  stale: [],
  answered: 0,
  failed: {},
  resets: 0,
  /** Per host absence: CPU ticks (utime+stime) and native wake-ups of this process while the host was away. */
  away: [],
  /** Per flood: writes issued, callbacks run, and the callbacks' errors as `code:syscall`. */
  floods: [],
  /** Per pause: how the never-reading Connection ended (its error code). */
  paused: [],
};

/** 1 MiB writes until the Connection dies; says "flood stalled" once writes stop going out. */
function flood(connection) {
  const chunk = Buffer.alloc(1024 * 1024, 0x66);
  const result = { issued: 0, settled: 0, errors: {} };
  stats.floods.push(result);
  const write = () => {
    while (!connection.destroyed) {
      result.issued += 1;
      const more = connection.write(chunk, (error) => {
        result.settled += 1;
        const key = error ? `${error.code ?? 'NO_CODE'}:${error.syscall ?? ''}` : 'ok';
        result.errors[key] = (result.errors[key] ?? 0) + 1;
      });
      if (!more) {
        connection.once('drain', write);
        return;
      }
    }
  };
  let seen = -1;
  const watch = setInterval(() => {
    if (connection.destroyed) clearInterval(watch);
    else if (result.settled === seen) {
      console.log('flood stalled');
      clearInterval(watch);
    } else seen = result.settled;
  }, 500);
  write();
}

/** Never reads; says "pause full" once the listener stopped reading ahead for it. */
function pause(connection) {
  connection.on('close', () => stats.paused.push(connection.errored?.code ?? 'NO_ERROR'));
  const watch = setInterval(() => {
    if (connection.destroyed) clearInterval(watch);
    else if (connection.readableLength >= 1024 * 1024) {
      console.log('pause full');
      clearInterval(watch);
    }
  }, 50);
}

/** utime + stime of this process, in clock ticks (USER_HZ, 100 per second). */
function cpuTicks() {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
}

/**
 * The first line; the bytes after it are put back at once, in the same tick: a Connection
 * whose END came with its data emits 'end' on the next tick unless bytes are buffered
 * again by then (an unshift after an await would be too late).
 */
function readFirstLine(connection) {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0 && buffered.length < 256) return;
      connection.off('data', onData);
      connection.pause();
      const end = newline < 0 ? buffered.length : newline;
      const rest = buffered.subarray(newline < 0 ? end : end + 1);
      connection.unshift(Buffer.concat([Buffer.from('\n'), rest])); // keep the newline: callers put the line back
      resolve(buffered.subarray(0, end).toString('latin1'));
    };
    connection.on('data', onData);
    connection.once('error', reject);
    connection.once('end', () => resolve(buffered.toString('latin1')));
  });
}

/** Drop the newline readFirstLine left in front. */
function skipNewline(connection) {
  const first = connection.read(1);
  if (first !== null && first[0] !== 0x0a) connection.unshift(first);
}

function countFailure(error) {
  const code = error?.code ?? 'NO_CODE';
  stats.failed[code] = (stats.failed[code] ?? 0) + 1;
}

function serveRequests(connection) {
  let buffered = '';
  connection.setEncoding('latin1');
  connection.on('data', (text) => {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const [id, size] = buffered.slice(0, newline).split(' ');
      buffered = buffered.slice(newline + 1);
      connection.write(`${id} ${'x'.repeat(Number(size))}\n`, (error) => (error ? countFailure(error) : (stats.answered += 1)));
    }
  });
  connection.on('end', () => connection.end());
}

let awaySince;
const transport = virtioSerial();
const listener = await transport.listen(`virtio-serial:${name}`);
listener.on('connection', async (connection) => {
  stats.connections += 1;
  const index = stats.connections;
  if (awaySince) {
    stats.away.push({ ticks: cpuTicks() - awaySince.ticks, wakeups: listener.wakeups - awaySince.wakeups, ms: Date.now() - awaySince.at });
    awaySince = undefined;
  }
  connection.on('error', (error) => {
    if (error.code === 'ECONNRESET') stats.resets += 1;
  });
  // From here until the next Connection the host is away (or about to come back). The
  // line tells the host that the guest has seen its hang-up (it waits for it, not a guess).
  connection.on('close', () => {
    awaySince = { ticks: cpuTicks(), wakeups: listener.wakeups, at: Date.now() };
    console.log(`closed ${index}`);
  });
  let line;
  try {
    line = await readFirstLine(connection);
  } catch {
    return;
  }
  const [command] = line.split(' ');
  try {
    dispatch(connection, command, line);
  } catch (error) {
    connection.destroy(error);
  }
});

function dispatch(connection, command, line) {
  if (['echo', 'send', 'sink', 'hold', 'halfclose'].includes(command)) {
    connection.unshift(Buffer.from(line, 'latin1')); // the peer reads the command line itself
    void servePeerConnection(connection);
  } else if (command === 'reqs') {
    skipNewline(connection);
    serveRequests(connection);
    connection.resume();
  } else if (command === 'flood') {
    flood(connection);
  } else if (command === 'pause') {
    pause(connection); // paused already (readFirstLine): nothing here resumes it
  } else if (command === 'stats') {
    connection.end(`${JSON.stringify(stats)}\n`);
  } else {
    stats.stale.push(JSON.stringify(line.slice(0, 64)));
    connection.destroy();
  }
}
listener.on('error', (error) => console.error('listener error', error));
console.log(`listening virtio-serial:${name} pid ${process.pid}`);
