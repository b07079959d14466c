/**
 * The connection cap with a reserve, as pure bookkeeping (the agent does the closing).
 *
 * - At most `max` connections in all, and at most `maxPerPeer` (default max - 8) for one
 *   peer (one uid, one CID): the last slots are reserved for other peers, so one peer
 *   cannot take them all.
 * - When a newcomer finds no slot, the longest-idle connection that has no request in
 *   flight is closed to make room: from the newcomer's own peer when that peer is at its
 *   share, else from the peer holding the most connections. So a client that parks
 *   hundreds of idle connections cannot lock anyone out; it only loses its own.
 * - Only when every candidate is busy is the newcomer refused.
 */
export interface SlotHolder {
  /** The peer key (uid:N, cid:N...). */
  readonly peer: string;
  /** A request is in flight (its handler or body still running). */
  readonly busy: boolean;
  /** When it last received anything (ms, any monotonic clock). */
  readonly lastActivity: number;
}

export type Admission<T> =
  | { readonly kind: 'admit' }
  | { readonly kind: 'evict'; readonly victim: T; readonly reason: 'peer-share' | 'total' }
  | { readonly kind: 'refuse'; readonly reason: 'peer-share' | 'total'; readonly message: string };

/** Slots kept for other peers: 8, or a quarter of a small cap. */
export const DEFAULT_RESERVED_SLOTS = 8;

export function defaultPerPeer(max: number): number {
  return Math.max(1, max - Math.min(DEFAULT_RESERVED_SLOTS, Math.floor(max / 4)));
}

export class ConnectionSlots<T> {
  private readonly holders = new Map<T, SlotHolder>();

  constructor(
    readonly max: number,
    readonly maxPerPeer: number,
  ) {}

  get size(): number {
    return this.holders.size;
  }

  countOf(peer: string): number {
    let n = 0;
    for (const holder of this.holders.values()) if (holder.peer === peer) n += 1;
    return n;
  }

  /** What to do with a newcomer of `peer`; the agent acts on it, then calls add(). */
  admit(peer: string): Admission<T> {
    if (this.countOf(peer) >= this.maxPerPeer) {
      const victim = this.longestIdle((holder) => holder.peer === peer);
      if (victim !== undefined) return { kind: 'evict', victim, reason: 'peer-share' };
      return { kind: 'refuse', reason: 'peer-share', message: `peer ${peer} already holds ${this.maxPerPeer} busy connections (its share of --max-connections ${this.max})` };
    }
    if (this.holders.size >= this.max) {
      const counts = new Map<string, number>();
      for (const holder of this.holders.values()) counts.set(holder.peer, (counts.get(holder.peer) ?? 0) + 1);
      // Idle connections of the biggest holders go first.
      const peers = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([p]) => p);
      for (const candidate of peers) {
        const victim = this.longestIdle((holder) => holder.peer === candidate);
        if (victim !== undefined) return { kind: 'evict', victim, reason: 'total' };
      }
      return { kind: 'refuse', reason: 'total', message: `all ${this.max} connections (--max-connections) are busy` };
    }
    return { kind: 'admit' };
  }

  add(connection: T, holder: SlotHolder): void {
    this.holders.set(connection, holder);
  }

  /** Replace what is known about a connection (busy, activity). */
  update(connection: T, holder: SlotHolder): void {
    if (this.holders.has(connection)) this.holders.set(connection, holder);
  }

  remove(connection: T): void {
    this.holders.delete(connection);
  }

  private longestIdle(match: (holder: SlotHolder) => boolean): T | undefined {
    let best: T | undefined;
    let bestAt = Number.POSITIVE_INFINITY;
    for (const [connection, holder] of this.holders) {
      if (holder.busy || !match(holder)) continue;
      if (holder.lastActivity < bestAt) {
        best = connection;
        bestAt = holder.lastActivity;
      }
    }
    return best;
  }
}
