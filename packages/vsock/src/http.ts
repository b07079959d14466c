import { Agent, type AgentOptions, type ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';

import { validateInteger, validateObject } from '@vmlink/errors';

import { validateTarget, type VsockAddress } from './address.js';
import { MAX_TIMER_MS, validateBoolean } from './options.js';
import { connect, type VsockSocket } from './socket.js';

export interface VsockAgentOptions extends AgentOptions {
  /** The CID every request of this agent goes to (e.g. 2 for the host, a guest's CID). */
  cid: number;
  /** The vsock port the HTTP server listens on. A request's own host and port are not used. */
  port: number;
  /** Connect timeout in ms for each new connection (ETIMEDOUT); default the kernel's 2 s. */
  connectTimeout?: number;
  /** VMADDR_FLAG_TO_HOST on each connection (sibling-VM CIDs through the host). */
  toHost?: boolean;
}

/**
 * An http.Agent whose connections are vsock sockets to one `{ cid, port }`: pooling and
 * keep-alive work as with TCP (`keepAlive: true`, `maxSockets`, `timeout`...). The URL's
 * host and port are only used for the Host header:
 * `http.get('http://guest/status', { agent: new VsockAgent({ cid: 3, port: 8080, keepAlive: true }) })`.
 */
export class VsockAgent extends Agent {
  /** Where this agent dials. */
  readonly target: Readonly<VsockAddress>;
  readonly #connectTimeout: number | undefined;
  readonly #toHost: boolean | undefined;

  constructor(options: VsockAgentOptions) {
    validateObject(options, 'options');
    const target = validateTarget(options, 'options');
    const connectTimeout =
      options.connectTimeout === undefined ? undefined : validateInteger(options.connectTimeout, 'options.connectTimeout', 1, MAX_TIMER_MS);
    const toHost = validateBoolean(options.toHost, 'options.toHost');
    // cid/port stay out of Agent's own options: Agent merges those over each request's.
    const { cid: _cid, port: _port, connectTimeout: _timeout, toHost: _toHost, ...agentOptions } = options;
    super(agentOptions);
    this.target = Object.freeze(target);
    this.#connectTimeout = connectTimeout;
    this.#toHost = toHost;
  }

  /** The pool key: one pool per vsock address (the URL's host does not pick the peer here). */
  override getName(): string {
    return `vsock:${this.target.cid}:${this.target.port}`;
  }

  /**
   * Dials the agent's target. `options.timeout` (the request's or agent's idle timeout) is
   * applied with setTimeout(), as net.createConnection does for node:http.
   */
  override createConnection(options: ClientRequestArgs): Duplex {
    const socket: VsockSocket = connect({
      ...this.target,
      ...(this.#connectTimeout === undefined ? {} : { timeout: this.#connectTimeout }),
      ...(this.#toHost === undefined ? {} : { toHost: this.#toHost }),
    });
    if (typeof options.timeout === 'number' && options.timeout > 0) socket.setTimeout(options.timeout);
    return socket;
  }
}
