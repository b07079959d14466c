// The net.Socket-compatible surface of VsockSocket and the VsockAgent, on this host: shapes,
// no-ops and validation only. NOTHING here connects (traffic: test/guest/drop-in.test.mjs).
import { Agent } from 'node:http';

import { describe, expect, it } from 'vitest';

import { socketAddressOf } from '../src/address.js';
import { VsockAgent, VsockSocket, connect, createConnection } from '../src/index.js';

const coded = (code: string, message: RegExp) => expect.objectContaining({ code, message: expect.stringMatching(message) });

describe('VsockSocket net.Socket surface (unconnected socket)', () => {
  it('setKeepAlive and setNoDelay are accepted no-ops that return the socket (node:http, http2 and ws call them)', () => {
    const socket = new VsockSocket();
    expect(socket.setKeepAlive()).toBe(socket);
    expect(socket.setKeepAlive(true, 1000)).toBe(socket);
    expect(socket.setKeepAlive(false)).toBe(socket);
    expect(socket.setNoDelay()).toBe(socket);
    expect(socket.setNoDelay(false)).toBe(socket);
    socket.destroy();
  });

  it('setKeepAlive rejects a bad initialDelay with a coded error naming it', () => {
    const socket = new VsockSocket();
    expect(() => socket.setKeepAlive(true, '1s' as never)).toThrow(coded('ERR_INVALID_ARG_TYPE', /"initialDelay".*'1s'/));
    expect(() => socket.setKeepAlive(true, -1)).toThrow(coded('ERR_OUT_OF_RANGE', /"initialDelay".*-1/));
    socket.destroy();
  });

  it('setTimeout records `timeout` as net does (the keep-alive Agent compares it), cuts fractions, and rejects bad values', () => {
    const socket = new VsockSocket();
    expect(socket.timeout).toBeUndefined();
    expect(socket.setTimeout(1500)).toBe(socket);
    expect(socket.timeout).toBe(1500);
    socket.setTimeout(2.9);
    expect(socket.timeout).toBe(2);
    socket.setTimeout(0);
    expect(socket.timeout).toBe(0);
    expect(() => socket.setTimeout(Number.NaN)).toThrow(coded('ERR_OUT_OF_RANGE', /"ms".*NaN/));
    expect(() => socket.setTimeout(2 ** 31)).toThrow(coded('ERR_OUT_OF_RANGE', /"ms"/));
    expect(() => socket.setTimeout('5' as never)).toThrow(coded('ERR_INVALID_ARG_TYPE', /"ms"/));
    socket.destroy();
  });

  it('address fields are undefined and address() is {} before a connection, like net', () => {
    const socket = new VsockSocket();
    expect(socket.remoteAddress).toBeUndefined();
    expect(socket.remoteFamily).toBeUndefined();
    expect(socket.remotePort).toBeUndefined();
    expect(socket.localAddress).toBeUndefined();
    expect(socket.localFamily).toBeUndefined();
    expect(socket.address()).toEqual({});
    expect(socket.readyState).toBe('closed');
    expect(socket.pending).toBe(true);
    expect(socket.connecting).toBe(false);
    socket.destroy();
  });

  it('remoteAddress/remoteFamily follow remoteCid (set as soon as a connect target is known)', () => {
    const socket = new VsockSocket();
    socket.remoteCid = 3; // what connect()/accept fill in
    expect(socket.remoteAddress).toBe('3');
    expect(socket.remoteFamily).toBe('vsock');
    socket.localCid = 0xffff_ffff;
    expect(socket.localAddress).toBe('4294967295');
    expect(socket.localFamily).toBe('vsock');
    socket.destroy();
  });

  it('destroySoon() on a socket that never connected ends and destroys it', async () => {
    const socket = new VsockSocket();
    socket.on('error', () => {}); // ending an unconnected socket reports ERR_SOCKET_CLOSED
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.destroySoon();
    await closed;
    expect(socket.destroyed).toBe(true);
  });

  it('createConnection is connect (net.createConnection naming)', () => {
    expect(createConnection).toBe(connect);
  });
});

describe('socketAddressOf (pure)', () => {
  it("is net-shaped next to cid: { cid, port, address: '<cid>', family: 'vsock' }", () => {
    expect(socketAddressOf(3, 1024)).toEqual({ cid: 3, port: 1024, address: '3', family: 'vsock' });
    expect(socketAddressOf(undefined, 1024)).toEqual({});
    expect(socketAddressOf(3, undefined)).toEqual({});
  });
});

describe('VsockAgent (no connection is made)', () => {
  it('is an http.Agent keyed on the vsock address, with keep-alive options passed through', () => {
    const agent = new VsockAgent({ cid: 3, port: 8080, keepAlive: true, maxSockets: 4, timeout: 1000 });
    expect(agent).toBeInstanceOf(Agent);
    expect(agent.target).toEqual({ cid: 3, port: 8080 });
    expect(agent.getName()).toBe('vsock:3:8080');
    // Agent's own fields, which @types/node does not declare.
    const internals = agent as unknown as { keepAlive: boolean; options: Record<string, unknown> };
    expect(internals.keepAlive).toBe(true);
    expect(agent.maxSockets).toBe(4);
    // cid/port must not reach Agent's options: Agent merges those over every request's.
    expect(internals.options).not.toHaveProperty('cid');
    expect(internals.options).not.toHaveProperty('port');
    expect(internals.options.timeout).toBe(1000);
    agent.destroy();
  });

  it.each([
    [undefined, 'ERR_INVALID_ARG_TYPE', /"options" argument must be of type object/],
    [{ port: 80 }, 'ERR_INVALID_ARG_TYPE', /"options\.cid".*Received undefined/],
    [{ cid: 3, port: '80' }, 'ERR_INVALID_ARG_TYPE', /"options\.port".*'80'/],
    [{ cid: -1, port: 80 }, 'ERR_OUT_OF_RANGE', /"options\.cid".*-1/],
    [{ cid: 3, port: 80, connectTimeout: 0 }, 'ERR_OUT_OF_RANGE', /"options\.connectTimeout"/],
    [{ cid: 3, port: 80, toHost: 1 }, 'ERR_INVALID_ARG_TYPE', /"options\.toHost"/],
  ])('new VsockAgent(%o) throws %s', (options, code, message) => {
    expect(() => new VsockAgent(options as never)).toThrow(coded(code, message));
  });
});
