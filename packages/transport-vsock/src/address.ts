import { invalidAddress, parseDecimal, splitUriFor, type TransportAddress } from '@vmlink/transport';

export const VSOCK_SCHEMES = ['vsock'] as const;

export const CID_HYPERVISOR = 0;
export const CID_LOCAL = 1;
export const CID_HOST = 2;
export const CID_ANY = 0xffff_ffff;
export const PORT_ANY = 0xffff_ffff;

/** Names accepted for a CID, and the one each number is printed as. */
const CID_NAMES: Readonly<Record<string, number>> = { host: CID_HOST, local: CID_LOCAL, any: CID_ANY };

export interface VsockTransportAddress extends TransportAddress {
  readonly scheme: 'vsock';
  /** Context id: 2 = host, 1 = this machine (loopback), 0xffffffff = any (listen only). */
  readonly cid: number;
  /** Port; 0xffffffff = any (listen only: the kernel picks one). */
  readonly port: number;
}

/** Canonical form: numbers, except `any` for VMADDR_CID_ANY / VMADDR_PORT_ANY. */
export function formatVsockUri(cid: number, port: number): string {
  return `vsock://${cid === CID_ANY ? 'any' : cid}:${port === PORT_ANY ? 'any' : port}`;
}

function parsePart(text: string, input: string, what: 'CID' | 'port'): number {
  if (what === 'CID' && text in CID_NAMES) return CID_NAMES[text] as number;
  if (what === 'port' && text === 'any') return PORT_ANY;
  return parseDecimal(text, input, what, 0, 0xffff_ffff);
}

/** `vsock://CID:PORT`; CID may be `host` (2), `local` (1) or `any`; PORT may be `any`. */
export function parseVsockAddress(input: string): VsockTransportAddress {
  const { rest } = splitUriFor(input, VSOCK_SCHEMES);
  const match = /^\/\/([^:/?#]*):([^:/?#]*)$/.exec(rest);
  if (!match) throw invalidAddress(input, 'expected vsock://CID:PORT (CID a number or host, local, any)');
  const cid = parsePart(match[1] ?? '', input, 'CID');
  const port = parsePart(match[2] ?? '', input, 'port');
  return { scheme: 'vsock', uri: formatVsockUri(cid, port), cid, port };
}

/** A dial needs a concrete peer: `any` only makes sense for listening. */
export function assertDialable(address: VsockTransportAddress): void {
  if (address.cid === CID_ANY) throw invalidAddress(address.uri, "cannot dial CID 'any'; name the peer (host, local or a number)");
  if (address.port === PORT_ANY) throw invalidAddress(address.uri, "cannot dial port 'any'");
}
