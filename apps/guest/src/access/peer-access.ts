import type { Connection, ConnectionPeer } from '@vmlink/transport';
import { AgentErrorCode } from '../errors.js';

/** The CID of the host, the only vsock peer served by default. */
export const HOST_CID = 2;

/** Who may connect. Default deny: built from `--allow-uid` and `--allow-cid`. */
export interface PeerAccessOptions {
  /** Unix sockets: uids allowed (default: the agent's own uid). */
  readonly allowUids: readonly number[];
  /** vsock: CIDs allowed (default [2], the host), or 'any'. */
  readonly allowCids: readonly number[] | 'any';
  /** Transports served without a kernel-reported identity (`--trust-transport`); default none. */
  readonly trustTransports?: readonly string[];
}

/** Who is on the other end, as the kernel reported it, and over which transport. */
export interface PeerIdentity extends ConnectionPeer {
  readonly transport: string;
}

export type AccessDecision =
  | { readonly allowed: true; readonly key: string }
  | { readonly allowed: false; readonly key: string; readonly code: AgentErrorCode; readonly message: string };

/**
 * A stable name of the peer for fairness and log limits: all connections of one uid (or
 * one CID) share it, whatever their per-connection number.
 */
export function peerKey(identity: PeerIdentity): string {
  if (identity.transport === 'unix' || identity.transport === 'hvsock') {
    return identity.uid === undefined ? `${identity.transport}:unknown` : `uid:${identity.uid}`;
  }
  if (identity.transport === 'vsock') return identity.cid === undefined ? 'vsock:unknown' : `cid:${identity.cid}`;
  return identity.transport;
}

/**
 * Pure decision: Unix and hvsock peers by uid (hvsock: the VMM's), vsock peers by CID, virtio-serial always (only the
 * host can open the port). Any other transport, or a peer whose identity the kernel did
 * not give us, is refused: access cannot be checked, so it is denied.
 */
export function decideAccess(identity: PeerIdentity, options: PeerAccessOptions): AccessDecision {
  const key = peerKey(identity);
  const refuse = (message: string): AccessDecision => ({ allowed: false, key, code: AgentErrorCode.PEER_NOT_ALLOWED, message });
  switch (identity.transport) {
    case 'unix':
      if (identity.uid === undefined) return refuse('the Unix peer credentials (SO_PEERCRED) could not be read');
      if (!options.allowUids.includes(identity.uid)) {
        return refuse(`uid ${identity.uid} is not allowed (--allow-uid ${options.allowUids.join(',')})`);
      }
      return { allowed: true, key };
    case 'hvsock':
      // A guest-initiated hvsock connection arrives on our Unix socket from the VMM (or the
      // vhost-user device): SO_PEERCRED names that process, not the guest. Checked like unix.
      if (identity.uid === undefined) return refuse("the hvsock peer's credentials (SO_PEERCRED of the VMM's connection) could not be read");
      if (!options.allowUids.includes(identity.uid)) {
        return refuse(`uid ${identity.uid} (the VMM's) is not allowed (--allow-uid ${options.allowUids.join(',')})`);
      }
      return { allowed: true, key };
    case 'vsock':
      if (identity.cid === undefined) return refuse("the vsock peer's CID is unknown");
      if (options.allowCids !== 'any' && !options.allowCids.includes(identity.cid)) {
        return refuse(`CID ${identity.cid} is not allowed (--allow-cid ${options.allowCids.join(',')})`);
      }
      return { allowed: true, key };
    case 'virtio-serial':
      return { allowed: true, key };
    default: {
      // Another plugin (a user's own, hvsock...): served only when the operator trusts it by
      // name; a uid or CID it does report is still checked.
      if (!(options.trustTransports ?? []).includes(identity.transport)) {
        return refuse(`transport '${identity.transport}' reports no peer identity to check (--trust-transport ${identity.transport} serves it)`);
      }
      if (identity.uid !== undefined && !options.allowUids.includes(identity.uid)) {
        return refuse(`uid ${identity.uid} is not allowed (--allow-uid ${options.allowUids.join(',')})`);
      }
      if (identity.cid !== undefined && options.allowCids !== 'any' && !options.allowCids.includes(identity.cid)) {
        return refuse(`CID ${identity.cid} is not allowed (--allow-cid ${options.allowCids.join(',')})`);
      }
      return { allowed: true, key };
    }
  }
}

/**
 * The peer of a connection as its transport reports it (`connection.peer`: SO_PEERCRED
 * for Unix sockets, the CID for vsock). Never taken from anything the peer sends.
 */
export function identifyPeer(connection: Connection): PeerIdentity {
  return { transport: connection.transport.name, ...connection.peer };
}

/** Formats an identity for a log line. */
export function describePeer(identity: PeerIdentity): string {
  const parts: string[] = [identity.transport];
  if (identity.uid !== undefined) parts.push(`uid=${identity.uid}`);
  if (identity.pid !== undefined) parts.push(`pid=${identity.pid}`);
  if (identity.cid !== undefined) parts.push(`cid=${identity.cid}`);
  return parts.join(' ');
}
