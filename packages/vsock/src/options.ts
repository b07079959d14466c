import { invalidArgType, validateAbortSignal, validateInteger, validateObject } from '@vmlink/errors';

import { validateTarget } from './address.js';
import type { ConnectTarget } from './connect.js';
import { VMADDR_FLAG_TO_HOST } from './constants.js';

export interface ConnectOptions {
  /** The peer's context id (1 = this machine, 2 = the host). */
  cid: number;
  port: number;
  /**
   * Connect timeout in ms (SO_VM_SOCKETS_CONNECT_TIMEOUT plus a JS timer as a bound):
   * an ETIMEDOUT error when it passes. Unlike `net`, this is NOT the idle timeout (use
   * `socket.setTimeout()`). Default: the kernel's (2 s).
   */
  timeout?: number;
  /** Aborting destroys the socket with an AbortError (ABORT_ERR), before or after connect. */
  signal?: AbortSignal;
  /** VMADDR_FLAG_TO_HOST: route through the host (sibling-VM CIDs). */
  toHost?: boolean;
}

export function validateBoolean(value: unknown, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

export const MAX_TIMER_MS = 2 ** 31 - 1;

export function parseConnectOptions(options: unknown): { target: ConnectTarget; signal: AbortSignal | undefined } {
  validateObject(options, 'options');
  const { cid, port } = validateTarget(options, 'options');
  const timeout = options.timeout === undefined ? undefined : validateInteger(options.timeout, 'options.timeout', 1, MAX_TIMER_MS);
  validateAbortSignal(options.signal, 'options.signal');
  const toHost = validateBoolean(options.toHost, 'options.toHost') ?? false;
  return { target: { cid, port, timeout, flags: toHost ? VMADDR_FLAG_TO_HOST : 0 }, signal: options.signal };
}

/** A user-supplied fd: a non-negative int32. */
export function validateFd(fd: unknown, name: string): number {
  return validateInteger(fd, name, 0, 2 ** 31 - 1);
}
