import os from 'node:os';
import type { AgentClientLimits, AgentInfo } from '@vmlink/agent-protocol';
import { METHOD_MEMORY_COST } from './limits/memory-budget.js';
import { AGENT_VERSION } from './version.js';

export type { AgentInfo } from '@vmlink/agent-protocol';

export interface InfoSources {
  /** Reads the local vsock CID; undefined when the platform has no AF_VSOCK. */
  readonly vsockCid: () => Promise<number | undefined>;
  readonly transports: () => string[];
  readonly aio: () => string;
  readonly root: string | undefined;
  readonly allowExec: readonly string[];
  readonly methods: readonly string[];
  /** The limits in force (after the open-file cap), reported so clients stay within them. */
  readonly limits?: AgentClientLimits;
}

/**
 * The limits as a client sees them: forwards count against the request half of
 * --memory-budget (the agent reserves the other half for RPC buffers) at the cost of
 * net.connect plus net.send each (the same whether a forward's bytes come in net.connect's
 * body or in a net.send). `streamsPerForward: 1` is reported by an agent whose net.connect
 * takes the client's bytes in its own body (a forward is then one of --max-streams).
 */
export function clientLimits(input: {
  maxConnections: number;
  maxConnectionsPerPeer: number;
  maxStreamsPerConnection: number;
  memoryBudgetBytes: number;
  streamsPerForward?: 1;
}): AgentClientLimits {
  const perForward = (METHOD_MEMORY_COST['net.connect'] ?? 0) + (METHOD_MEMORY_COST['net.send'] ?? 0);
  const requestBudget = Math.max(1, Math.floor(input.memoryBudgetBytes / 2));
  return {
    maxConnections: input.maxConnections,
    maxConnectionsPerPeer: input.maxConnectionsPerPeer,
    maxStreamsPerConnection: input.maxStreamsPerConnection,
    maxForwards: perForward > 0 ? Math.floor(requestBudget / perForward) : input.maxConnections,
    ...(input.streamsPerForward === 1 ? { streamsPerForward: 1 as const } : {}),
  };
}

export async function collectInfo(sources: InfoSources): Promise<AgentInfo> {
  const cpus = os.cpus();
  const [l1 = 0, l5 = 0, l15 = 0] = os.loadavg();
  let vsockCid: number | null = null;
  try {
    vsockCid = (await sources.vsockCid()) ?? null;
  } catch {
    vsockCid = null; // no AF_VSOCK here (a container, a host): info still answers
  }
  return {
    hostname: os.hostname(),
    kernel: { sysname: os.type(), release: os.release(), version: os.version(), machine: os.machine() },
    uptimeSeconds: Math.round(os.uptime()),
    load: [l1, l5, l15],
    memory: { totalBytes: os.totalmem(), freeBytes: os.freemem() },
    cpus: { count: cpus.length, model: cpus[0]?.model.trim() ?? 'unknown' },
    vsockCid,
    agent: {
      version: AGENT_VERSION,
      node: process.version,
      pid: process.pid,
      aio: sources.aio(),
      root: sources.root ?? null,
      allowExec: [...sources.allowExec],
    },
    transports: sources.transports(),
    methods: [...sources.methods],
    ...(sources.limits ? { limits: { ...sources.limits } } : {}),
  };
}
