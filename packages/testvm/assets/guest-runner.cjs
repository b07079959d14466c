'use strict';
// The @vmlink/testvm guest runner, started by /init. It speaks JSON lines with the host
// over the control virtio-serial port:
//   host -> guest  {type:'config', shares, ports, outputCap}  (first message)
//                  {type:'run', id, cmd, args, cwd, env, input?}   {type:'kill', id}
//                  {type:'shutdown'}
//   guest -> host  {type:'ready', release, cpus, memoryBytes, modules, uptimeMs, arch}
//                  {type:'out', id, stream, data(base64)}
//                  {type:'exit', id, exitCode, signal, truncated, spawnError?, failure?: 'bad-cwd'}
//                  {type:'fatal', message}  {type:'bye'}
// Every finished command is also summarised on the result port (a host file).
const fs = require('node:fs');
const os = require('node:os');
const { spawn, execFile, execFileSync } = require('node:child_process');

const CONTROL_PORT = 'org.vmlink.testvm.control';
const RESULT_PORT = 'org.vmlink.testvm.result';
const CHUNK_BYTES = 64 * 1024;
const PAUSE_ABOVE_BYTES = 8 * 1024 * 1024;
const RESUME_BELOW_BYTES = 1024 * 1024;
const EXIT_DRAIN_MS = 500;
const SUMMARY_TAIL_BYTES = 4096;

function log(message) {
  process.stderr.write(`vmlink-testvm: runner: ${message}\n`);
}

function virtioPorts() {
  const found = new Map();
  let entries = [];
  try {
    entries = fs.readdirSync('/sys/class/virtio-ports');
  } catch {
    return found;
  }
  for (const dev of entries) {
    try {
      // No trailing newline in these files; an unnamed port has an empty one.
      const name = fs.readFileSync(`/sys/class/virtio-ports/${dev}/name`, 'utf8').trim();
      if (name !== '') found.set(name, dev);
    } catch {
      // The port is still being set up.
    }
  }
  return found;
}

/** Port names arrive from the host asynchronously after virtio_console loads: wait. */
async function waitForPorts(names, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ports = virtioPorts();
    if (names.every((n) => ports.has(n)) || Date.now() > deadline) return ports;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What udev would do: /dev/virtio-ports/NAME -> ../vportNpM. */
function linkPorts(ports) {
  fs.mkdirSync('/dev/virtio-ports', { recursive: true });
  for (const [name, dev] of ports) {
    try {
      fs.symlinkSync(`../${dev}`, `/dev/virtio-ports/${name}`);
    } catch (err) {
      if (err.code !== 'EEXIST') log(`cannot link port ${name}: ${err.message}`);
    }
  }
}

// ---- control channel: one fd, blocking reads on the pool, writes queued in order ----
let controlFd = -1;
const writeQueue = [];
let queuedBytes = 0;
let writing = false;
const running = new Map();
let outputPaused = false;

function send(message) {
  const bytes = Buffer.from(`${JSON.stringify(message)}\n`);
  writeQueue.push(bytes);
  queuedBytes += bytes.length;
  if (!outputPaused && queuedBytes > PAUSE_ABOVE_BYTES) setOutputPaused(true);
  pump();
}

function pump() {
  if (writing) return;
  const bytes = writeQueue.shift();
  if (bytes === undefined) return;
  writing = true;
  writeAll(bytes, 0);
}

function writeAll(bytes, offset) {
  fs.write(controlFd, bytes, offset, bytes.length - offset, null, (err, written) => {
    if (err) {
      if (err.code === 'EAGAIN' || err.code === 'EINTR') {
        setTimeout(() => writeAll(bytes, offset), 20);
        return;
      }
      log(`control write failed: ${err.message}`);
      process.exit(70);
    }
    if (offset + written < bytes.length) {
      writeAll(bytes, offset + written);
      return;
    }
    queuedBytes -= bytes.length;
    writing = false;
    if (outputPaused && queuedBytes < RESUME_BELOW_BYTES) setOutputPaused(false);
    pump();
  });
}

function setOutputPaused(paused) {
  outputPaused = paused;
  for (const job of running.values()) {
    for (const stream of [job.child.stdout, job.child.stderr]) {
      if (stream === null) continue;
      if (paused) stream.pause();
      else stream.resume();
    }
  }
}

function readLoop(onBytes) {
  const buffer = Buffer.alloc(CHUNK_BYTES);
  const next = () => {
    fs.read(controlFd, buffer, 0, buffer.length, null, (err, count) => {
      if (err) {
        if (err.code !== 'EAGAIN' && err.code !== 'EINTR') log(`control read failed: ${err.message}`);
        setTimeout(next, 50);
        return;
      }
      // 0 means "host not connected right now", not the end: try again shortly.
      if (count === 0) {
        setTimeout(next, 50);
        return;
      }
      onBytes(Buffer.from(buffer.subarray(0, count)));
      next();
    });
  };
  next();
}

function lineSplitter(onLine) {
  let pending = '';
  return (bytes) => {
    pending += bytes.toString('utf8');
    let newline;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() !== '') onLine(line);
    }
  };
}

// ---- result port: a host file, written synchronously (it never blocks) ----
let resultFd = -1;
function summarise(record) {
  if (resultFd < 0) return;
  try {
    fs.writeSync(resultFd, `${JSON.stringify(record)}\n`);
  } catch {
    // Diagnostics only.
  }
}

// ---- commands ----
let outputCap = 64 * 1024 * 1024;

function signalNumber(signal) {
  return os.constants.signals[signal] ?? 0;
}

function isDirectory(path) {
  try {
    return fs.statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function runCommand(request) {
  const { id } = request;
  const job = {
    child: null,
    sent: { stdout: 0, stderr: 0 },
    truncated: false,
    tails: { stdout: '', stderr: '' },
    done: false,
    exited: false,
    drainTimer: undefined,
    armDrain: () => {},
  };
  const finish = (exitCode, signal, spawnError, failure) => {
    if (job.done) return;
    job.done = true;
    clearTimeout(job.drainTimer);
    running.delete(id);
    // 9p with cache=loose keeps writes in the guest's page cache: flush them so the host
    // sees a command's files as soon as the command is reported done.
    flushWritableShares(() => {
      // The summary goes first: a blocking write to a virtio port returns once QEMU has
      // taken the bytes, so the host's resultLog() has the record when 'exit' arrives.
      summarise({ id, cmd: request.cmd, args: request.args, exitCode, signal, stdoutTail: job.tails.stdout, stderrTail: job.tails.stderr });
      send({ type: 'exit', id, exitCode, signal, truncated: job.truncated, spawnError, failure });
    });
  };
  if (!isDirectory(request.cwd)) {
    finish(127, null, `working directory '${request.cwd}' does not exist in the guest`, 'bad-cwd');
    return;
  }
  let child;
  try {
    child = spawn(request.cmd, request.args ?? [], {
      cwd: request.cwd,
      env: request.env,
      stdio: [request.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      // Own process group, so a timeout kills the whole tree.
      detached: true,
    });
  } catch (err) {
    finish(127, null, err.message);
    return;
  }
  job.child = child;
  running.set(id, job);
  for (const stream of ['stdout', 'stderr']) {
    child[stream].on('data', (chunk) => {
      if (job.exited) job.armDrain();
      job.tails[stream] = (job.tails[stream] + chunk.toString('utf8')).slice(-SUMMARY_TAIL_BYTES);
      const room = outputCap - job.sent[stream];
      if (room <= 0) {
        job.truncated = true;
        return;
      }
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (part.length < chunk.length) job.truncated = true;
      job.sent[stream] += part.length;
      for (let at = 0; at < part.length; at += CHUNK_BYTES) {
        send({ type: 'out', id, stream, data: part.subarray(at, at + CHUNK_BYTES).toString('base64') });
      }
    });
  }
  if (outputPaused) setOutputPaused(true);
  if (request.input !== undefined) {
    child.stdin.on('error', () => {});
    child.stdin.end(Buffer.from(request.input, 'base64'));
  }
  child.on('error', (err) => {
    // Spawn failures (ENOENT, EACCES) look like a shell's "command not found".
    if (child.pid === undefined) finish(err.code === 'EACCES' ? 126 : 127, null, `${request.cmd}: ${err.message}`);
  });
  child.on('close', (code, signal) => finish(code ?? 128 + signalNumber(signal), signal ?? null));
  child.on('exit', (code, signal) => {
    // A background process may keep stdout open forever: once the command has exited,
    // finish when its pipes have been quiet for EXIT_DRAIN_MS (and we are not holding
    // them paused for backpressure), without waiting for 'close'.
    job.exited = true;
    job.armDrain = () => {
      clearTimeout(job.drainTimer);
      job.drainTimer = setTimeout(() => {
        if (outputPaused) {
          job.armDrain();
          return;
        }
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code ?? 128 + signalNumber(signal), signal ?? null);
      }, EXIT_DRAIN_MS);
    };
    job.armDrain();
  });
}

let writableShares = false;
function flushWritableShares(then) {
  if (!writableShares) {
    then();
    return;
  }
  execFile('sync', [], () => then());
}

function killCommand(id) {
  const job = running.get(id);
  if (job === undefined || job.child.pid === undefined) return;
  try {
    process.kill(-job.child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

function mountShares(shares) {
  for (const share of shares) {
    fs.mkdirSync(share.path, { recursive: true });
    const options = ['trans=virtio', 'version=9p2000.L', 'msize=512000', 'cache=loose', share.readOnly ? 'ro' : 'rw'];
    execFileSync('mount', ['-t', '9p', '-o', options.join(','), share.tag, share.path], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (!share.readOnly) writableShares = true;
  }
}

function loadedModules() {
  try {
    return fs.readFileSync('/proc/modules', 'utf8').split('\n').filter((l) => l !== '').map((l) => l.split(' ')[0]);
  } catch {
    return [];
  }
}

async function configure(config) {
  if (typeof config.outputCap === 'number') outputCap = config.outputCap;
  const ports = await waitForPorts(config.ports ?? [], 10_000);
  linkPorts(ports);
  const missing = (config.ports ?? []).filter((n) => !ports.has(n));
  if (missing.length > 0) throw new Error(`virtio-serial ports never appeared: ${missing.join(', ')}`);
  mountShares(config.shares ?? []);
  send({
    type: 'ready',
    release: os.release(),
    cpus: os.cpus().length,
    memoryBytes: os.totalmem(),
    modules: loadedModules(),
    uptimeMs: Math.round(os.uptime() * 1000),
    arch: process.arch,
  });
}

function shutdown() {
  for (const id of running.keys()) killCommand(id);
  try {
    execFileSync('sync');
  } catch {
    // Best effort before the host pulls the plug.
  }
  send({ type: 'bye' });
}

async function main() {
  const initial = await waitForPorts([CONTROL_PORT, RESULT_PORT], 30_000);
  linkPorts(initial);
  const controlDev = initial.get(CONTROL_PORT);
  if (controlDev === undefined) throw new Error('the control port never appeared');
  controlFd = fs.openSync(`/dev/${controlDev}`, 'r+');
  const resultDev = initial.get(RESULT_PORT);
  if (resultDev !== undefined) resultFd = fs.openSync(`/dev/${resultDev}`, 'w');
  let configured = false;
  readLoop(
    lineSplitter((line) => {
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        log(`ignoring a line that is not JSON (${line.length} chars)`);
        return;
      }
      if (message.type === 'config' && !configured) {
        configured = true;
        configure(message).catch((err) => {
          send({ type: 'fatal', message: err.message });
          summarise({ fatal: err.message });
        });
      } else if (message.type === 'run') runCommand(message);
      else if (message.type === 'kill') killCommand(message.id);
      else if (message.type === 'shutdown') shutdown();
    }),
  );
}

main().catch((err) => {
  log(err.stack ?? String(err));
  summarise({ fatal: err.message });
  process.exit(1);
});
