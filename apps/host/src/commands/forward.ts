import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { describeAgentError } from '@vmlink/agent-protocol';
import { VmlinkError } from '@vmlink/errors';
import type { AgentClient } from '../agent-client.js';
import type { CommonOptions } from '../args.js';
import { exitCodeFor, ExitCode } from '../exit-codes.js';
import type { CliOutput } from '../output.js';

export interface ForwardSpec {
  readonly bindHost: string;
  readonly bindPort: number;
  readonly host: string;
  readonly port: number;
}

/** `[BIND:]LPORT:HOST:PORT` (IPv6 hosts in brackets). Pure; throws a plain Error naming the spec. */
export function parseForwardSpec(text: string): ForwardSpec {
  const parts = text.match(/\[[^\]]*\]|[^:]+/g) ?? [];
  const unbracket = (h: string): string => (h.startsWith('[') ? h.slice(1, -1) : h);
  const port = (p: string | undefined, min: number): number => {
    const n = Number(p);
    if (p === undefined || !/^\d+$/.test(p) || n < min || n > 65535) throw new Error(`'${text}': port '${p ?? ''}' is not ${min}..65535`);
    return n;
  };
  if (parts.length === 3) return { bindHost: '127.0.0.1', bindPort: port(parts[0], 0), host: unbracket(parts[1] as string), port: port(parts[2], 1) };
  if (parts.length === 4) return { bindHost: unbracket(parts[0] as string), bindPort: port(parts[1], 0), host: unbracket(parts[2] as string), port: port(parts[3], 1) };
  throw new Error(`'${text}' is not [BIND:]LOCALPORT:GUESTHOST:GUESTPORT (e.g. 8080:127.0.0.1:80)`);
}

export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * One accepted TCP connection carried to the guest: net.connect streams what the target
 * sends into the socket (pipe(): the socket's backpressure pauses the body, whose credit
 * then stalls the agent's reads of the target), net.send streams the socket's bytes to
 * the target (the RPC body's credit pauses the socket). Either side failing closes both.
 */
async function carry(socket: Socket, client: AgentClient, spec: ForwardSpec, report: (error: Error) => void): Promise<void> {
  socket.on('error', () => undefined);
  try {
    const { id, body } = await client.openTcp(spec.host, spec.port);
    body.on('error', () => socket.destroy());
    body.pipe(socket);
    await client.sendTcp(id, socket);
    await new Promise<void>((resolve) => {
      if (socket.destroyed) resolve();
      else socket.once('close', () => resolve());
    });
  } catch (error) {
    socket.destroy();
    report(error as Error);
  }
}

export function describeError(error: Error): string {
  const code = (error as { code?: unknown }).code;
  const codeText = typeof code === 'string' ? code : 'ERROR';
  const words = describeAgentError(codeText);
  return `${words ? `${words}: ` : ''}${error.message} [${codeText}]`;
}

/**
 * `vmlink forward URI [BIND:]LPORT:HOST:PORT`: listens on the host (127.0.0.1 by default)
 * and carries every accepted connection to HOST:PORT in the guest, which the agent must
 * allow (--allow-forward). One agent connection per TCP connection where the transport
 * has many (unix, vsock, hvsock), all over the one connection where it has one
 * (virtio-serial). Runs until SIGINT/SIGTERM (exit 0).
 */
export async function forwardCommand(
  connect: () => Promise<AgentClient>,
  first: AgentClient,
  spec: ForwardSpec,
  common: CommonOptions,
  out: CliOutput,
  stop: AbortSignal,
): Promise<number> {
  // Refused by policy? Say so now, not at the first connection. A target that is not up yet is only a warning.
  try {
    await first.probe(spec.host, spec.port);
  } catch (error) {
    const code = exitCodeFor((error as { code?: string }).code);
    if (code === ExitCode.POLICY || code === ExitCode.USAGE) throw error;
    out.stderr.write(`vmlink forward: warning: ${formatHostPort(spec.host, spec.port)} in the guest does not accept connections yet: ${describeError(error as Error)}\n`);
  }
  const shared = first.multiConnection ? undefined : first;
  const clients = new Set<AgentClient>();
  const server: Server = createServer({ allowHalfOpen: true });
  const report = (error: Error): void => void out.stderr.write(`vmlink forward ${first.uri}: ${describeError(error)}\n`);
  server.on('connection', (socket: Socket) => {
    void (async () => {
      let client = shared;
      if (!client) {
        try {
          client = await connect();
        } catch (error) {
          socket.destroy();
          report(error as Error);
          return;
        }
        clients.add(client);
      }
      await carry(socket, client, spec, report);
      if (client !== shared) {
        clients.delete(client);
        await client.close().catch(() => undefined);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: spec.bindHost, port: spec.bindPort }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((error: NodeJS.ErrnoException) => {
    throw new VmlinkError('ERR_VMLINK_LOCAL_FILE', `cannot listen on ${formatHostPort(spec.bindHost, spec.bindPort)}: ${error.message}`, { cause: error });
  });
  const address = server.address();
  const local = typeof address === 'object' && address ? formatHostPort(address.address, address.port) : String(address);
  const line = { listening: local, target: formatHostPort(spec.host, spec.port), uri: first.uri };
  out.stdout.write(common.json ? `${JSON.stringify(line)}\n` : `forwarding ${local} -> ${line.target} in the guest via ${first.uri}\n`);
  await new Promise<void>((resolve) => {
    if (stop.aborted) resolve();
    else stop.addEventListener('abort', () => resolve(), { once: true });
  });
  server.close();
  await Promise.allSettled([...clients].map((c) => c.close()));
  return ExitCode.OK;
}

/** `30s`, `500ms`, `2m`, `1500`: milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match) return undefined;
  const n = Number(match[1]) * (match[2] === 's' ? 1000 : match[2] === 'm' ? 60_000 : 1);
  return Number.isFinite(n) && n > 0 ? Math.round(n) : undefined;
}

/**
 * `vmlink wait-port URI HOST:PORT --timeout 30s`: returns once the guest service accepts
 * connections (net.probe), probing with backoff; 75 when the time is up; a refusal of the
 * agent's policy ends the wait at once (77).
 */
export async function waitPortCommand(client: AgentClient, host: string, port: number, deadline: number, common: CommonOptions, out: CliOutput): Promise<number> {
  const started = performance.now();
  let delay = 50;
  let last: Error | undefined;
  for (;;) {
    try {
      const result = await client.probe(host, port);
      const seconds = (performance.now() - started) / 1000;
      if (common.json) out.stdout.write(`${JSON.stringify({ ...result, waitedMs: Math.round(seconds * 1000) })}\n`);
      else out.stdout.write(`${formatHostPort(host, port)} in the guest accepts connections (after ${seconds.toFixed(1)} s)\n`);
      return ExitCode.OK;
    } catch (error) {
      const code = exitCodeFor((error as { code?: string }).code);
      if (code === ExitCode.POLICY || code === ExitCode.USAGE || code === ExitCode.CONNECTION_LOST) throw error;
      last = error as Error;
    }
    if (performance.now() + delay >= deadline) {
      throw new VmlinkError('ERR_VMLINK_TIMEOUT', `${formatHostPort(host, port)} in the guest did not accept connections in time; last: ${last ? describeError(last) : 'none'}`, { cause: last });
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(1000, delay * 2);
  }
}
