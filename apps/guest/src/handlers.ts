import type { FileBackend } from './aio.js';
import type { ChunkSink } from './methods/files.js';
import { AgentErrorCode, agentError } from './errors.js';
import { collectInfo, type InfoSources } from './info.js';
import { randomBytes } from 'node:crypto';
import { CLIENT_SIGNALS, checkExecRequest, startCommand, type ClientSignal, type RunningCommand } from './methods/exec.js';
import { resolveCwd } from './exec/cwd.js';
import { checkEnv } from './exec/env.js';
import { resolveOutputCaps } from './exec/output-cap.js';
import { checkPtyParams, startPtyCommand } from './exec/pty-command.js';
import { changeMode, changeTimes, checkMode, hashPrefix, makeDirectory, movePath, removePath } from './methods/manage.js';
import { listDirectory, openForRead, partialUpload, statPath, streamOpenedFile, writeFileAtomic } from './methods/files.js';
import { detachedHandlers } from './methods/detached.js';
import { DetachedRegistry } from './detached/registry.js';
import { dialTarget, feedFromConnectBody, feedTarget, probeTarget, pumpTarget, type ForwardTable } from './methods/forward.js';
import type { AgentLimits } from './options.js';
import { formatTarget, type ForwardPolicy } from './policy/forward-policy.js';
import type { RootJail } from './policy/confine.js';
import { describeValue, type ExecPolicy } from './policy/exec-policy.js';
import { ExecRecordTag, encodeExecRecord, type MethodName } from './protocol.js';

/** What a method handler gets besides its params. Independent of the RPC library. */
export interface CallContext {
  readonly peer: string;
  /** Aborted when the client goes away or the agent's shutdown grace runs out. */
  readonly signal: AbortSignal;
  /** The request's streamed body (fs.write), if the client sent one. */
  readonly body: AsyncIterable<Uint8Array> | undefined;
  /** Facts for the request log line (bytes moved, exit code). */
  readonly note: (key: string, value: string | number | boolean) => void;
  /** This client connection's forwarded TCP connections (net.connect / net.send). */
  readonly forwards: ForwardTable;
  /** This client connection's running commands, by id (exec.stdin / exec.signal). */
  readonly commands: Map<string, RunningCommand>;
}

/**
 * A reply with a streamed body: `result` goes out first, then `produce` sends the body
 * through `send` (which resolves when the client can take more). `keepRequestBody`: the
 * handler reads its request body on after returning (a forward's two directions); the
 * request is then over once that body is over too.
 */
export class Streamed {
  constructor(
    readonly result: unknown,
    readonly produce: (send: ChunkSink) => Promise<void>,
    readonly keepRequestBody = false,
  ) {}
}

export type Handler = (params: Record<string, unknown>, ctx: CallContext) => Promise<unknown>;

export interface HandlerDeps {
  readonly jail: RootJail | undefined;
  readonly policy: ExecPolicy;
  readonly backend: FileBackend;
  readonly limits: AgentLimits;
  readonly info: InfoSources;
  readonly forward: ForwardPolicy;
  /** Environment variable names exec may set (`--allow-env`, already checked); default none. */
  readonly allowEnv?: readonly string[];
  /** Detached processes (agent-wide); made from `limits` when not given. The agent's shutdown should call its shutdown(). */
  readonly detached?: DetachedRegistry;
}

/** How long a guest TCP connect may take (net.connect, net.probe). */
const CONNECT_TIMEOUT_MS = 10_000;

/** The agent's methods (METHODS in @vmlink/agent-protocol). */
export function createHandlers(deps: HandlerDeps): Record<MethodName, Handler> {
  const jail = (): RootJail => {
    if (!deps.jail) throw agentError(AgentErrorCode.FS_DISABLED, 'file methods are disabled: the agent runs without --root');
    return deps.jail;
  };
  const detached =
    deps.detached ??
    new DetachedRegistry({
      maxRunning: deps.limits.maxDetached ?? 16,
      maxExited: deps.limits.maxDetachedExited ?? 16,
      outputBytes: deps.limits.detachedOutputBytes ?? 1024 * 1024,
    });
  return {
    ...detachedHandlers(deps, detached),
    ping: async () => ({ pong: true, time: Date.now() }),
    info: async () => collectInfo(deps.info),
    'fs.stat': async (params) => statPath(jail(), params['path']),
    'fs.list': async (params) => listDirectory(jail(), params['path'] ?? '/', deps.limits.maxListEntries),
    'fs.read': async (params, ctx) => {
      const offset = params['offset'] ?? 0;
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.read: offset must be an integer >= 0, got ${describeValue(offset)}`);
      }
      const opened = await openForRead(deps.backend, jail(), params['path']);
      if (offset > opened.size) {
        await opened.file.close();
        throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.read: offset ${offset} is past the end of '${opened.remotePath}' (${opened.size} bytes)`);
      }
      return new Streamed({ size: opened.size, offset }, async (send) => {
        const result = await streamOpenedFile(opened, send, ctx.signal, offset);
        await send(Buffer.from(result.sha256, 'hex'));
        ctx.note('bytes', result.size);
      });
    },
    'fs.write': async (params, ctx) => {
      const size = params['size'];
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.write: size must be an integer >= 0, got ${JSON.stringify(size)}`);
      }
      if (size > deps.limits.maxWriteBytes) {
        throw agentError(AgentErrorCode.TOO_LARGE, `fs.write: ${size} bytes exceeds the agent's limit of ${deps.limits.maxWriteBytes}`);
      }
      const sha256 = params['sha256'];
      if (sha256 !== undefined && (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256))) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.write: sha256 must be 64 lower-case hex digits, got ${describeValue(sha256)}`);
      }
      const mode = checkMode(params['mode'], 'fs.write', false);
      const mtimeMs = params['mtimeMs'];
      if (mtimeMs !== undefined && (typeof mtimeMs !== 'number' || !Number.isFinite(mtimeMs) || mtimeMs < 0)) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.write: mtimeMs must be milliseconds since 1970 (a number >= 0), got ${describeValue(mtimeMs)}`);
      }
      const resume = writeResumeOf(params, size, sha256);
      const result = await writeFileAtomic(deps.backend, jail(), params['path'], ctx.body ?? emptyBody(), {
        resume,
        expectedSha256: sha256,
        // The announced size is the cap: a client cannot announce 1 byte and send 1 GiB.
        maxBytes: size,
        expectedSize: size,
        mode,
        mtimeMs,
        signal: ctx.signal,
      });
      ctx.note('bytes', result.size);
      // A resumed upload received only what follows the part it continued.
      if (resume && resume.offset > 0) ctx.note('resumedFrom', resume.offset);
      return result;
    },
    'fs.partial': async (params, ctx) => partialUpload(jail(), params['path'], params['sha256'], ctx.signal),
    'fs.hash': async (params, ctx) => hashPrefix(jail(), params['path'], params['length'], ctx.signal),
    'fs.mkdir': async (params) => makeDirectory(jail(), params['path'], params['mode'], params['parents']),
    'fs.rm': async (params, ctx) => removePath(jail(), params['path'], params['recursive'], ctx.signal),
    'fs.mv': async (params) => movePath(jail(), params['from'], params['to']),
    'fs.chmod': async (params) => changeMode(jail(), params['path'], params['mode']),
    'fs.utimes': async (params) => changeTimes(jail(), params['path'], params['mtimeMs'], params['atimeMs']),
    'exec.stdin': async (params, ctx) => {
      const running = commandOf(ctx, params['id'], 'exec.stdin');
      const bytes = await running.feedStdin(ctx.body ?? emptyBody(), ctx.signal);
      ctx.note('bytes', bytes);
      return { bytes };
    },
    'exec.signal': async (params, ctx) => {
      const running = commandOf(ctx, params['id'], 'exec.signal');
      const signal = params['signal'];
      if (typeof signal !== 'string' || !(CLIENT_SIGNALS as readonly string[]).includes(signal)) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `exec.signal: signal must be one of ${CLIENT_SIGNALS.join(', ')}, got ${describeValue(signal)}`);
      }
      const delivered = !running.exitedAlready;
      running.sendSignal(signal as ClientSignal);
      ctx.note('signal', signal);
      return { signal, delivered };
    },
    'net.probe': async (params, ctx) => {
      const target = deps.forward.check('net.probe', params['host'], params['port']);
      return probeTarget(target, ctx.signal, CONNECT_TIMEOUT_MS);
    },
    'net.connect': async (params, ctx) => {
      const target = deps.forward.check('net.connect', params['host'], params['port']);
      ctx.note('target', formatTarget(target));
      const socket = await dialTarget(target, ctx.signal, CONNECT_TIMEOUT_MS);
      socket.on('error', () => undefined); // reported through the body's end
      // A request body carries the client's bytes (info.limits.streamsPerForward 1): one
      // request per forward. Without one, net.send { id } feeds it (older clients).
      const input = ctx.body;
      const opened = ctx.forwards.add(socket, input !== undefined);
      if (input) void feedFromConnectBody(socket, input, ctx.signal).then((fed) => ctx.note('sent', fed.bytes));
      const produce = async (send: ChunkSink): Promise<void> => {
        try {
          ctx.note('bytes', await pumpTarget(socket, send, ctx.signal));
        } catch (error) {
          socket.destroy();
          throw error;
        }
      };
      return new Streamed(opened, produce, input !== undefined);
    },
    'net.send': async (params, ctx) => {
      const socket = ctx.forwards.get(params['id']);
      const result = await feedTarget(socket, ctx.body ?? emptyBody(), ctx.signal);
      ctx.note('bytes', result.bytes);
      return result;
    },
    exec: async (params, ctx) => {
      const { command, args } = checkExecRequest(deps.policy, { command: params['command'], args: params['args'] });
      const stdin = params['stdin'] ?? false;
      if (typeof stdin !== 'boolean') throw agentError(AgentErrorCode.INVALID_PARAMS, `exec: stdin must be a boolean, got ${describeValue(stdin)}`);
      const pty = checkPtyParams(params['pty']);
      const env = checkEnv(params['env'], deps.allowEnv ?? []);
      const caps = resolveOutputCaps(params['maxOutput'], deps.limits.execMaxOutputBytes ?? Number.MAX_SAFE_INTEGER);
      ctx.note('command', command);
      if (pty) ctx.note('pty', `${pty.cols}x${pty.rows}`);
      const resolved = await deps.policy.resolve(command);
      const cwd = await resolveCwd(deps.jail, params['cwd']);
      const options = { cwd: cwd.path, signal: ctx.signal, timeoutMs: deps.limits.execTimeoutMs, stdin, env, caps };
      const running = await (pty ? Promise.resolve().then(() => startPtyCommand(resolved, args, pty, options)) : startCommand(resolved, args, options)).finally(() => {
        // Not awaited: the child has its cwd once it runs, and collect() must attach to its
        // pipes before Node's exit handling drains the ones nobody reads (awaiting the close
        // here let a quick command's output and 'close' go by: the exec then never ended).
        void cwd.release().catch(() => undefined);
      });
      ctx.note('pid', running.pid ?? 0);
      const id = randomBytes(16).toString('hex');
      ctx.commands.set(id, running);
      return new Streamed({ command, id }, async (send) => {
        const result = await running
          .collect((stream, chunk) => send(encodeExecRecord(stream === 'stdout' ? ExecRecordTag.STDOUT : ExecRecordTag.STDERR, chunk)))
          .finally(() => ctx.commands.delete(id));
        await send(encodeExecRecord(ExecRecordTag.EXIT, Buffer.from(JSON.stringify(result))));
        ctx.note('exit', result.exitCode ?? result.signal ?? '?');
        if (result.truncated) ctx.note('truncated', Object.keys(result.truncated).join(','));
      });
    },
  };
}

/** fs.write's resumable-upload params (`resume`, `offset`, `prefixSha256`), checked. */
function writeResumeOf(params: Record<string, unknown>, size: number, sha256: unknown): { offset: number; prefixSha256?: string } | undefined {
  const { resume, offset = 0, prefixSha256 } = params;
  if (resume === undefined || resume === false) {
    if (offset !== 0 || prefixSha256 !== undefined) throw agentError(AgentErrorCode.INVALID_PARAMS, 'fs.write: offset and prefixSha256 need resume: true');
    return undefined;
  }
  if (resume !== true) throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.write: resume must be a boolean, got ${describeValue(resume)}`);
  if (sha256 === undefined) throw agentError(AgentErrorCode.INVALID_PARAMS, 'fs.write: resume: true needs the sha256 of the whole file');
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || offset > size) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.write: offset must be an integer 0..${size} (the size), got ${describeValue(offset)}`);
  }
  if (offset === 0) return { offset };
  if (typeof prefixSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(prefixSha256)) {
    throw agentError(AgentErrorCode.INVALID_PARAMS, `fs.write: prefixSha256 must be 64 lower-case hex digits, got ${describeValue(prefixSha256)}`);
  }
  return { offset, prefixSha256 };
}

async function* emptyBody(): AsyncGenerator<Uint8Array> {}

function commandOf(ctx: CallContext, id: unknown, method: string): RunningCommand {
  const running = typeof id === 'string' ? ctx.commands.get(id) : undefined;
  if (!running) throw agentError(AgentErrorCode.NO_SUCH_STREAM, `${method}: no command ${describeValue(id)} is running on this connection`);
  return running;
}
