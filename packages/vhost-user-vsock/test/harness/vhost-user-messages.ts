// vhost-user message encoding for the test harness, which plays QEMU (pure logic).
export const Req = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  SET_MEM_TABLE: 5,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  GET_CONFIG: 24,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
} as const;

export const FLAG_VERSION = 1;
export const FLAG_REPLY = 4;
export const FLAG_NEED_REPLY = 8;

export const F_VERSION_1 = 1n << 32n;
export const F_SEQPACKET = 1n << 1n;
export const F_EVENT_IDX = 1n << 29n;
export const F_INDIRECT = 1n << 28n;
export const F_PROTOCOL_FEATURES = 1n << 30n;
export const PF_REPLY_ACK = 1n << 3n;
export const PF_CONFIG = 1n << 9n;
export const PF_MEM_SLOTS = 1n << 15n;

export function encode(request: number, payload: Buffer = Buffer.alloc(0), flags = FLAG_VERSION): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt32LE(request, 0);
  header.writeUInt32LE(flags, 4);
  header.writeUInt32LE(payload.length, 8);
  return Buffer.concat([header, payload]);
}

export function u64(value: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return b;
}

export function vringState(index: number, num: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(num, 4);
  return b;
}

export function vringAddr(index: number, desc: bigint, used: bigint, avail: bigint): Buffer {
  const b = Buffer.alloc(40);
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(0, 4);
  b.writeBigUInt64LE(desc, 8);
  b.writeBigUInt64LE(used, 16);
  b.writeBigUInt64LE(avail, 24);
  b.writeBigUInt64LE(0n, 32);
  return b;
}

export interface Region {
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  mmapOffset: bigint;
}

export function memReg(region: Region): Buffer {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(0n, 0); // padding
  b.writeBigUInt64LE(region.guestPhysAddr, 8);
  b.writeBigUInt64LE(region.memorySize, 16);
  b.writeBigUInt64LE(region.userspaceAddr, 24);
  b.writeBigUInt64LE(region.mmapOffset, 32);
  return b;
}

export function configRequest(offset: number, size: number): Buffer {
  const b = Buffer.alloc(12 + size);
  b.writeUInt32LE(offset, 0);
  b.writeUInt32LE(size, 4);
  b.writeUInt32LE(0, 8);
  return b;
}

export interface Reply {
  request: number;
  flags: number;
  payload: Buffer;
}

export function decode(bytes: Buffer): Reply[] {
  const out: Reply[] = [];
  let at = 0;
  while (at + 12 <= bytes.length) {
    const size = bytes.readUInt32LE(at + 8);
    out.push({ request: bytes.readUInt32LE(at), flags: bytes.readUInt32LE(at + 4), payload: bytes.subarray(at + 12, at + 12 + size) });
    at += 12 + size;
  }
  return out;
}
