import { constants as fsConstants, type Stats } from 'node:fs';
import { ColdReadMeter, type ColdReadPolicy, type Position } from '@vmlink/aio';
import { routeRead, routeWrite, type FileFacts, type GuardPolicy, type Route } from './guard.js';
import type { BufferedReads } from './options.js';
import type { WriteNowaitProbe } from './write-nowait.js';

/** What the guard of every file of one backend shares. */
export interface GuardServices {
  /** false in strict mode: everything goes to io_submit without NOWAIT. */
  readonly guard: boolean;
  readonly bufferedReads: BufferedReads;
  readonly coldReadPolicy: ColdReadPolicy;
  /** The fallback reports whether the page cache served a read (FdIo.readvCacheFirst). */
  readonly fallbackReportsHits: boolean;
  readonly writeNowait: WriteNowaitProbe;
}

/**
 * The blocking guard of one file: what the file knows about itself (size, sparse, append,
 * O_DIRECT), whether read NOWAIT works on it, its cold-read meter and its file system's
 * write-NOWAIT probe, and from those where each request goes (guard.ts decides; this
 * keeps the state and hears how requests ended). No I/O here.
 */
export class FileGuard {
  readonly #services: GuardServices;
  readonly #dev: number;
  readonly #coldReads: ColdReadMeter;
  /** Only buffered files in 'adaptive' mode meter their reads. */
  readonly #metered: boolean;
  #facts: FileFacts;
  #readNowait = true;

  constructor(services: GuardServices, direct: boolean, flags: string | number, stats: Stats) {
    this.#services = services;
    this.#dev = stats.dev;
    this.#metered = services.guard && services.bufferedReads === 'adaptive' && !direct;
    this.#coldReads = new ColdReadMeter(services.coldReadPolicy, { fallbackReports: this.#metered && services.fallbackReportsHits });
    this.#facts = factsOf(direct, isAppend(flags), stats);
  }

  get facts(): FileFacts {
    return this.#facts;
  }

  /** Buffered reads of this file skip NOWAIT for now (they kept missing the cache). */
  get coldReads(): boolean {
    return this.#coldReads.cold;
  }

  route(isRead: boolean, position: Position, length: number): Route {
    const services = this.#services;
    const policy: GuardPolicy = {
      guard: services.guard,
      bufferedReads: services.bufferedReads,
      readNowait: this.#readNowait,
      writeNowait: services.writeNowait.enabled(this.#dev),
      coldReads: isRead && this.#metered && this.#coldReads.skipNowait(),
    };
    if (isRead) return routeRead(this.#facts, policy);
    return routeWrite(this.#facts, Number(position) + length, policy);
  }

  /**
   * How a NOWAIT read ended in the kernel (`res` bytes or -errno): a miss is EAGAIN, a
   * read cut short where the cache ends, or one whose io_submit call did I/O.
   */
  nowaitReadEnded(res: number, slowSubmit: boolean, length: number): void {
    if (this.#metered) this.#coldReads.record(!slowSubmit && (res === length || res === 0));
  }

  /** How a read of a cold file ended on the fallback (`hit`: the page cache served it). */
  fallbackReadEnded(hit: boolean): void {
    this.#coldReads.recordFallback(hit);
  }

  /** A NOWAIT read said EOPNOTSUPP: this file's reads stop asking for NOWAIT. */
  readNowaitUnsupported(): void {
    this.#readNowait = false;
  }

  /** A NOWAIT write succeeded, or said EAGAIN: the file system's probe hears it. */
  nowaitWriteEnded(wouldBlock: boolean): void {
    if (wouldBlock) this.#services.writeNowait.wouldBlock(this.#dev);
    else this.#services.writeNowait.succeeded(this.#dev);
  }

  /** `bytes` were written at `position`: raises the known size. */
  wrote(position: Position, bytes: number): void {
    const end = Number(position) + bytes;
    if (bytes > 0 && end > this.#facts.size) this.#facts = { ...this.#facts, size: end };
  }

  /** After truncate/fallocate/discard: size and holes as fstat says now. */
  restat(stats: Stats): void {
    this.#facts = factsOf(this.#facts.direct, this.#facts.append, stats);
  }
}

function factsOf(direct: boolean, append: boolean, stats: Stats): FileFacts {
  return { direct, append, sparse: stats.blocks * 512 < stats.size, size: stats.size };
}

function isAppend(flags: string | number): boolean {
  return typeof flags === 'number' ? (flags & fsConstants.O_APPEND) !== 0 : flags.startsWith('a');
}
