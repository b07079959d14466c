import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLIs: these tests run the real binaries as child processes. */
export const HOST_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const GUEST_CLI = path.resolve(path.dirname(HOST_CLI), '../../guest/dist/cli.js');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runVmlink(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HOST_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Starts a CLI child without waiting: for the tests that kill the agent mid-copy. */
export function spawnVmlink(args: readonly string[]): { child: ChildProcess; done: Promise<CliRun> } {
  const child = spawn(process.execPath, [HOST_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (t: string) => (stdout += t));
  child.stderr?.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const done = new Promise<CliRun>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

export interface AgentProcess {
  child: ChildProcess;
  uri: string;
  /** Everything the agent logged so far. */
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startAgent(socketPath: string, args: readonly string[]): Promise<AgentProcess> {
  const uri = `unix:${socketPath}`;
  const child = spawn(process.execPath, [GUEST_CLI, '--listen', uri, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.setEncoding('utf8').on('data', (t: string) => (log += t));
  child.stderr?.setEncoding('utf8').on('data', (t: string) => (log += t));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  while (!log.includes(' ready ')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`agent did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!(await socketAnswers(socketPath))) throw new Error(`agent says ready but ${socketPath} does not answer:\n${log}`);
  return {
    child,
    uri,
    log: () => log,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
