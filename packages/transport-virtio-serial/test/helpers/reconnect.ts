import type { Connection, Transport } from '@vmlink/transport';

export interface LoopResult {
  answered: number;
  failed: number;
  failureCodes: Record<string, number>;
  /** Replies that were not exactly the answer to this Connection's request (stale bytes would land here). */
  wrongReplies: string[];
  /** `iteration/way/size: code` of every failed request. */
  failures: string[];
}

export interface GuestStats {
  connections: number;
  stale: string[];
  answered: number;
  failed: Record<string, number>;
  resets: number;
  away: Array<{ ticks: number; wakeups: number; ms: number }>;
}

const SIZES = [1, 4096, 100_000];
/** A request that neither settles nor fails by then counts as hung. */
const REQUEST_DEADLINE_MS = 60_000;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Send request `id` on `connection`; resolves with the reply line, rejects with a coded error. */
function request(connection: Connection, id: number, size: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const deadline = setTimeout(() => finish(coded('HUNG', `request ${id} neither answered nor failed`)), REQUEST_DEADLINE_MS);
    const finish = (error: Error | undefined, line?: string): void => {
      clearTimeout(deadline);
      connection.off('data', onData);
      connection.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(line as string);
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const newline = text.indexOf('\n');
      if (newline >= 0) finish(undefined, text.slice(0, newline));
    };
    const onClose = (): void => finish(connection.errored ?? coded('ECONNRESET', `the Connection closed before reply ${id}`));
    const onAbort = (): void => {
      connection.destroy();
      finish(coded('ABORT_ERR', `request ${id} aborted: the host disconnected with it in flight`));
    };
    connection.on('data', onData);
    connection.on('close', onClose);
    connection.on('error', () => {});
    signal.addEventListener('abort', onAbort, { once: true });
    connection.write(`reqs ${id}\n${id} ${size}\n`);
  });
}

/**
 * Dial, send one request, and leave in one of four ways: after the reply, at once, after
 * a few ms, or with end(). Every 25th time the host stays away: `away(n)` runs after the
 * host closed its n-th Connection (counted from 1) and the host dials again once it
 * settles (without it the host stays away for a second).
 */
export async function reconnectLoop<Away = void>(
  transport: Transport,
  address: string,
  count: number,
  away: (closedConnections: number) => Promise<Away> = () => delay(1000) as Promise<Away>,
): Promise<LoopResult & { absences: Away[] }> {
  const absences: Away[] = [];
  const result: LoopResult = { answered: 0, failed: 0, failureCodes: {}, wrongReplies: [], failures: [] };
  for (let i = 0; i < count; i++) {
    const connection = await transport.dial(address, { timeout: 60_000 });
    const size = SIZES[i % SIZES.length] as number;
    const controller = new AbortController();
    const reply = request(connection, i, size, controller.signal);
    switch (i % 4) {
      case 1:
        controller.abort();
        break;
      case 2:
        setTimeout(() => controller.abort(), i % 20);
        break;
      case 3:
        connection.end();
        break;
    }
    try {
      const line = await reply;
      if (line === `${i} ${'x'.repeat(size)}`) result.answered += 1;
      else {
        result.failed += 1;
        result.wrongReplies.push(`${i}: ${JSON.stringify(line.slice(0, 40))}`);
      }
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? 'NO_CODE');
      result.failed += 1;
      result.failureCodes[code] = (result.failureCodes[code] ?? 0) + 1;
      result.failures.push(`${i}/${i % 4}/${size}: ${code} ${(error as Error).message}`);
    }
    if (!connection.closed) {
      const closed = new Promise((resolve) => connection.once('close', resolve));
      connection.destroy();
      await closed;
    }
    if (i % 25 === 24) absences.push(await away(i + 1));
  }
  return { ...result, absences };
}

/** The guest server's counters (one more Connection). */
export async function readGuestStats(transport: Transport, address: string): Promise<GuestStats> {
  const connection = await transport.dial(address, { timeout: 60_000 });
  connection.write('stats\n');
  let text = '';
  for await (const chunk of connection) text += (chunk as Buffer).toString('utf8');
  return JSON.parse(text) as GuestStats;
}
