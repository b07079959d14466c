'use strict';
// Sits between a @vmlink/testvm caller and QEMU. The caller holds our stdin: when that
// pipe closes (stop(), exit, or even SIGKILL of the caller) QEMU is killed and the VM's
// temp folder removed. Usage: node supervisor.cjs TMPDIR QEMU [ARGS...]
// Reports on stdout as JSON lines: {type:'spawned',pid}, {type:'exit',code,signal},
// {type:'error',code,message}.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [dir, file, ...args] = process.argv.slice(2);
let qemuDone = false;
let callerGone = false;

function report(message) {
  if (callerGone) return;
  try {
    process.stdout.write(`${JSON.stringify(message)}\n`);
  } catch {
    // The caller went away; the stdin 'close' below handles it.
  }
}

function finishWhenDone() {
  if (!qemuDone || !callerGone) return;
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

const log = fs.openSync(path.join(dir, 'qemu.log'), 'a');
const qemu = spawn(file, args, { stdio: ['ignore', log, log] });
fs.closeSync(log);

qemu.on('spawn', () => report({ type: 'spawned', pid: qemu.pid }));
qemu.on('error', (err) => {
  report({ type: 'error', code: err.code, message: err.message });
  qemuDone = true;
  finishWhenDone();
});
qemu.on('exit', (code, signal) => {
  report({ type: 'exit', code, signal });
  qemuDone = true;
  finishWhenDone();
});

function killQemu() {
  if (qemuDone) return;
  qemu.kill('SIGTERM');
  setTimeout(() => qemu.kill('SIGKILL'), 3000).unref();
}

function callerLeft() {
  callerGone = true;
  killQemu();
  finishWhenDone();
}

process.stdout.on('error', () => {});
process.stdin.on('data', (chunk) => {
  if (chunk.includes('k')) killQemu();
});
process.stdin.on('end', callerLeft);
process.stdin.on('close', callerLeft);
process.stdin.on('error', callerLeft);
// A terminal's Ctrl-C reaches the whole process group: let the caller decide.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.on('SIGTERM', callerLeft);
