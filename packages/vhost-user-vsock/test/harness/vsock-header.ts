// virtio-vsock packet header for the test harness (pure logic).
export const HDR = 44;
export const Op = { REQUEST: 1, RESPONSE: 2, RST: 3, SHUTDOWN: 4, RW: 5, CREDIT_UPDATE: 6, CREDIT_REQUEST: 7 } as const;
export const TYPE_STREAM = 1;
export const TYPE_SEQPACKET = 2;
export const SEQ_EOM = 1;
export const SHUTDOWN_RCV = 1;
export const SHUTDOWN_SEND = 2;

export interface Header {
  srcCid: bigint;
  dstCid: bigint;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

export function writeHeader(buf: Buffer, at: number, h: Header): void {
  buf.writeBigUInt64LE(h.srcCid, at);
  buf.writeBigUInt64LE(h.dstCid, at + 8);
  buf.writeUInt32LE(h.srcPort >>> 0, at + 16);
  buf.writeUInt32LE(h.dstPort >>> 0, at + 20);
  buf.writeUInt32LE(h.len >>> 0, at + 24);
  buf.writeUInt16LE(h.type & 0xffff, at + 28);
  buf.writeUInt16LE(h.op & 0xffff, at + 30);
  buf.writeUInt32LE(h.flags >>> 0, at + 32);
  buf.writeUInt32LE(h.bufAlloc >>> 0, at + 36);
  buf.writeUInt32LE(h.fwdCnt >>> 0, at + 40);
}

export function readHeader(buf: Buffer, at: number): Header {
  return {
    srcCid: buf.readBigUInt64LE(at),
    dstCid: buf.readBigUInt64LE(at + 8),
    srcPort: buf.readUInt32LE(at + 16),
    dstPort: buf.readUInt32LE(at + 20),
    len: buf.readUInt32LE(at + 24),
    type: buf.readUInt16LE(at + 28),
    op: buf.readUInt16LE(at + 30),
    flags: buf.readUInt32LE(at + 32),
    bufAlloc: buf.readUInt32LE(at + 36),
    fwdCnt: buf.readUInt32LE(at + 40),
  };
}
