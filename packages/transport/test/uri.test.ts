import { describe, expect, it } from 'vitest';
import { parseDecimal, resolveAddress, splitUri, splitUriFor } from '@vmlink/transport';

describe('splitUri', () => {
  it('splits scheme and rest, lower-casing the scheme', () => {
    expect(splitUri('VSOCK://3:1024')).toEqual({ scheme: 'vsock', rest: '//3:1024' });
    expect(splitUri('unix:/tmp/a.sock')).toEqual({ scheme: 'unix', rest: '/tmp/a.sock' });
    expect(splitUri('virtio-serial+unix:/x')).toEqual({ scheme: 'virtio-serial+unix', rest: '/x' });
  });

  it.each([[''], ['/tmp/a.sock'], ['1vsock://1:2'], [':x'], ['no scheme']])('rejects %j naming it', (input) => {
    expect(() => splitUri(input)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: expect.stringContaining(`'${input}'`) }));
  });

  it('rejects non-strings with the value described', () => {
    expect(() => splitUri(42)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS', message: expect.stringContaining('type number (42)') }));
    expect(() => splitUri(undefined)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS' }));
  });

  it('splitUriFor refuses a scheme the transport does not own, listing its own', () => {
    expect(() => splitUriFor('tcp://x', ['unix'])).toThrow(/Invalid address 'tcp:\/\/x': scheme 'tcp:' is not one of 'unix:'/);
  });
});

describe('parseDecimal', () => {
  it('accepts plain decimal integers in range', () => {
    expect(parseDecimal('0', 'x:0', 'port', 0, 10)).toBe(0);
    expect(parseDecimal('4294967295', 'x', 'cid', 0, 0xffffffff)).toBe(0xffffffff);
  });

  it.each([['-1'], ['+1'], ['01'], ['1.0'], ['0x10'], [' 1'], [''], ['1e3']])('rejects %j', (text) => {
    expect(() => parseDecimal(text, `v://${text}`, 'port', 0, 65535)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS' }));
  });

  it('rejects out-of-range values, saying the range', () => {
    expect(() => parseDecimal('4294967296', 'v://1:4294967296', 'port', 0, 0xffffffff)).toThrow(/port 4294967296 is out of range 0..4294967295/);
  });
});

describe('resolveAddress', () => {
  const parse = (uri: string): { scheme: string; uri: string } => ({ scheme: 'a', uri: splitUriFor(uri, ['a']).rest });
  it('parses strings and re-parses objects from their uri', () => {
    expect(resolveAddress('a:x', parse).uri).toBe('x');
    expect(() => resolveAddress({ scheme: 'a', uri: 'b:forged' }, parse)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS' }));
    expect(() => resolveAddress(null as unknown as string, parse)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_ADDRESS' }));
  });
});
