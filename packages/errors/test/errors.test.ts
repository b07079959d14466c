import { describe, expect, it } from 'vitest';
import {
  SystemError,
  VmlinkError,
  abortError,
  assertLinux,
  invalidArgType,
  throwIfAborted,
  validateUint32,
} from '../src/index.js';

describe('@vmlink/errors (pure logic)', () => {
  it('SystemError looks like a Node system error', () => {
    const err = new SystemError({ code: 'ECONNREFUSED', errno: 111, syscall: 'connect', address: 'vsock://3:1024', cid: 3, port: 1024 });
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('connect ECONNREFUSED vsock://3:1024');
    expect(err.errno).toBe(-111);
    expect(err.code).toBe('ECONNREFUSED');
    expect(err.cid).toBe(3);
  });

  it('validateUint32 names the bad value', () => {
    expect(validateUint32(0xffffffff, 'port')).toBe(0xffffffff);
    expect(() => validateUint32('12', 'port')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining("'12'") }));
    expect(() => validateUint32(-1, 'cid')).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('Received -1') }));
    expect(() => validateUint32(1.5, 'cid')).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => validateUint32(2 ** 32, 'cid')).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });

  it('abort errors carry ABORT_ERR and the reason', () => {
    const ac = new AbortController();
    ac.abort(new Error('why'));
    expect(() => throwIfAborted(ac.signal)).toThrow(expect.objectContaining({ name: 'AbortError', code: 'ABORT_ERR' }));
    expect((abortError(ac.signal).cause as Error).message).toBe('why');
  });

  it('assertLinux rejects other platforms with ERR_VMLINK_UNSUPPORTED_PLATFORM', () => {
    expect(() => assertLinux('vsock', 'darwin')).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_UNSUPPORTED_PLATFORM', message: expect.stringContaining('darwin') }));
    expect(() => assertLinux('vsock', 'linux')).not.toThrow();
    expect(invalidArgType('x', 'of type number', null)).toBeInstanceOf(VmlinkError);
  });
});

describe('assertSupportedNode', () => {
  it('accepts the supported lines and refuses older ones with a code naming the version', async () => {
    const { assertSupportedNode, MIN_NODE_MAJOR } = await import('../src/index.js');
    expect(MIN_NODE_MAJOR).toBe(20);
    for (const version of ['20.0.0', '22.11.0', '26.1.0']) expect(() => assertSupportedNode(version)).not.toThrow();
    for (const version of ['18.20.8', '0.10.48', 'garbage']) {
      expect(() => assertSupportedNode(version)).toThrow(
        expect.objectContaining({ code: 'ERR_VMLINK_UNSUPPORTED_NODE', message: expect.stringContaining(`this is Node.js ${version}`) }),
      );
    }
  });
});
