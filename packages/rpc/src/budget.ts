import { validateInteger } from '@vmlink/errors';

/** What a budget needs from each peer that shares it. */
export interface BudgetMember {
  /** Look again at whether to read: called (batched, once per turn of the loop) after bytes were released elsewhere. */
  budgetChanged(): void;
}

interface Charge {
  /** Bytes the member holds that only its remote or its handlers can release (queued output, unread bodies). */
  releasable: number;
  /** Bytes only reading more can release (a frame being received, a read chunk held back). */
  inbound: number;
}

/**
 * A memory budget shared by many RpcPeers (say, every connection of an agent). Each peer
 * charges the bytes it buffers and stops reading its connection while it is over budget:
 *
 * - its releasable bytes (queued replies and chunks, unread request/response bodies)
 *   exceed its fair share, `limit / members`; or
 * - the whole budget is spent (`used >= limit`) and it holds any releasable bytes.
 *
 * Bytes that only reading can release (a frame half received, at most `maxFrameSize`,
 * plus one read chunk) are charged to `used` but never pause their own peer, since that
 * would wedge it: `frameTimeout` is what bounds them. So memory stays below `limit` plus,
 * per peer, one frame and one read chunk, plus what handlers already running produce.
 * Peers resume as their remotes read and their handlers consume bodies.
 */
export class RpcMemoryBudget {
  readonly limit: number;
  private readonly charges = new Map<BudgetMember, Charge>();
  private readonly blocked = new Set<BudgetMember>();
  private total = 0;
  private recheckQueued = false;

  constructor(limit: number) {
    this.limit = validateInteger(limit, 'limit', 1, Number.MAX_SAFE_INTEGER);
  }

  /** Bytes charged by every member together. */
  get used(): number {
    return this.total;
  }

  /** Peers sharing the budget right now. */
  get members(): number {
    return this.charges.size;
  }

  /** Releasable bytes one member may hold before it must stop reading. */
  get fairShare(): number {
    return Math.floor(this.limit / Math.max(1, this.charges.size));
  }

  /** @internal A peer joins (RpcPeer does this itself). */
  join(member: BudgetMember): void {
    if (!this.charges.has(member)) this.charges.set(member, { releasable: 0, inbound: 0 });
  }

  /** @internal A peer leaves and releases all it held (fair shares grow). */
  leave(member: BudgetMember): void {
    const charge = this.charges.get(member);
    if (!charge) return;
    this.charges.delete(member);
    this.blocked.delete(member);
    this.total -= charge.releasable + charge.inbound;
    this.queueRecheck();
  }

  /** @internal Set what `member` holds now; true when it must stop reading. */
  charge(member: BudgetMember, releasable: number, inbound: number): boolean {
    const charge = this.charges.get(member);
    if (!charge) return false;
    const before = charge.releasable + charge.inbound;
    charge.releasable = releasable;
    charge.inbound = inbound;
    this.total += releasable + inbound - before;
    if (releasable + inbound < before) this.queueRecheck();
    const over = releasable > this.fairShare || (releasable > 0 && this.total >= this.limit);
    if (over) this.blocked.add(member);
    else this.blocked.delete(member);
    return over;
  }

  /** Blocked peers look again once per turn of the loop, not once per released byte. */
  private queueRecheck(): void {
    if (this.recheckQueued || this.blocked.size === 0) return;
    this.recheckQueued = true;
    setImmediate(() => {
      this.recheckQueued = false;
      for (const member of [...this.blocked]) member.budgetChanged();
    });
  }
}

/**
 * A memory budget of `bytes` to share among RpcPeers: pass it as `budget` to each.
 * Throws ERR_OUT_OF_RANGE unless `bytes` is a positive integer.
 */
export function createMemoryBudget(bytes: number): RpcMemoryBudget {
  return new RpcMemoryBudget(bytes);
}
