import { DETACHED_SIGNALS, type DetachedAttachResult, type DetachedKillResult, type DetachedListResult, type DetachedMethodName, type DetachedProcessInfo, type DetachedSignal } from '@vmlink/agent-protocol';
import { readAttachAcks } from '../detached/acks.js';
import { attachStart, streamAttach } from '../detached/attach.js';
import type { DetachedProcess } from '../detached/process.js';
import { DetachedRegistry } from '../detached/registry.js';
import { AgentErrorCode, agentError } from '../errors.js';
import { Streamed, type Handler, type HandlerDeps } from '../handlers.js';
import { describeValue } from '../policy/exec-policy.js';
import { MAX_TIMER_MS, checkExecRequest, startCommand } from './exec.js';

/**
 * The detached-process methods (see DETACHED_METHODS in @vmlink/agent-protocol). The same
 * exec policy as `exec` (--allow-exec, fixed PATH, cwd the root, own process group);
 * method access (--allow-rpcs/--block-rpcs) and peer access are the agent's, as for every
 * method.
 */
export function detachedHandlers(deps: Pick<HandlerDeps, 'policy' | 'jail'>, registry: DetachedRegistry): Record<DetachedMethodName, Handler> {
  return {
    'detached.start': async (params, ctx): Promise<DetachedProcessInfo> => {
      const { command, args } = checkExecRequest(deps.policy, { command: params['command'], args: params['args'] });
      const release = registry.reserve();
      let entry;
      try {
        ctx.note('command', command);
        const resolved = await deps.policy.resolve(command);
        const running = await startCommand(resolved, args, {
          cwd: deps.jail?.realRoot ?? '/',
          // Not the request's signal: the process outlives this request and its connection.
          signal: registry.signal,
          // exec's --exec-timeout is for one-shot commands: a detached process runs until it exits or is killed.
          timeoutMs: 0,
          stdin: false,
        });
        entry = registry.add(command, args, running);
      } finally {
        release();
      }
      ctx.note('id', entry.id);
      ctx.note('pid', entry.pid);
      return entry.info();
    },
    'detached.list': async (): Promise<DetachedListResult> => ({
      processes: registry.list().map((p) => p.info()),
      limits: registry.limits,
    }),
    'detached.wait': async (params, ctx): Promise<DetachedProcessInfo> => {
      const entry = registry.get(params['id'], 'detached.wait');
      const timeoutMs = params['timeoutMs'];
      if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isSafeInteger(timeoutMs) || timeoutMs < 0)) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `detached.wait: timeoutMs must be an integer >= 0, got ${describeValue(timeoutMs)}`);
      }
      await waitForExit(entry, timeoutMs, ctx.signal);
      return entry.info();
    },
    'detached.kill': async (params, ctx): Promise<DetachedKillResult> => {
      const entry = registry.get(params['id'], 'detached.kill');
      const signal = params['signal'] ?? 'SIGTERM';
      if (typeof signal !== 'string' || !(DETACHED_SIGNALS as readonly string[]).includes(signal)) {
        throw agentError(AgentErrorCode.INVALID_PARAMS, `detached.kill: signal must be one of ${DETACHED_SIGNALS.join(', ')}, got ${describeValue(signal)}`);
      }
      ctx.note('signal', signal);
      const delivered = entry.signal(signal as DetachedSignal);
      return { id: entry.id, signal: signal as DetachedSignal, delivered };
    },
    'detached.attach': async (params, ctx) => {
      const entry = registry.get(params['id'], 'detached.attach');
      const fromStart = params['fromStart'] ?? false;
      if (typeof fromStart !== 'boolean') throw agentError(AgentErrorCode.INVALID_PARAMS, `detached.attach: fromStart must be a boolean, got ${describeValue(fromStart)}`);
      const ack = params['ack'] ?? false;
      if (typeof ack !== 'boolean') throw agentError(AgentErrorCode.INVALID_PARAMS, `detached.attach: ack must be a boolean, got ${describeValue(ack)}`);
      const acks = ctx.body;
      if (ack && acks === undefined) throw agentError(AgentErrorCode.INVALID_PARAMS, 'detached.attach: ack needs a request body (the ACK records)');
      const { start, lost } = attachStart(entry, fromStart);
      const result: DetachedAttachResult = { process: entry.info(), lost, start };
      if (!ack || acks === undefined) {
        // A client that does not acknowledge: what was sent to it counts as delivered.
        return new Streamed(result, async (send) => streamAttach(entry, start, send, ctx.signal, (stream, offset) => entry.markDelivered(stream, offset)));
      }
      const sentUpTo = { ...start };
      return new Streamed(
        result,
        async (send) => {
          // A bad acknowledgement ends the attach with its error.
          const badAck = new AbortController();
          readAttachAcks(acks, entry, sentUpTo).catch((error: unknown) => badAck.abort(error));
          const signal = AbortSignal.any([ctx.signal, badAck.signal]);
          await streamAttach(entry, start, send, signal, (stream, offset) => {
            sentUpTo[stream] = offset;
          });
        },
        true,
      );
    },
  };
}

/** Resolves when `entry` exited, `timeoutMs` passed, or `signal` aborted (then rejects). */
async function waitForExit(entry: DetachedProcess, timeoutMs: number | undefined, signal: AbortSignal): Promise<void> {
  if (entry.exited) return;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    await Promise.race([
      entry.finished,
      new Promise<void>((resolve) => {
        if (timeoutMs !== undefined) timer = setTimeout(resolve, Math.min(timeoutMs, MAX_TIMER_MS));
      }),
      new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason as Error);
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
