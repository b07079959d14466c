import { describe, expect, it } from 'vitest';
import { decideAccess } from '../src/access/peer-access.js';
import { parseGuestArgs, resolveAgentOptions } from '../src/options.js';

describe('own transports: options and access (pure)', () => {
  it('--transport (repeatable) after VMLINK_TRANSPORTS (comma-separated), --trust-transport', () => {
    const parsed = parseGuestArgs(['--transport', './b.js', '--transport', 'pkg#tcp', '--trust-transport', 'tcp,serial'], { VMLINK_TRANSPORTS: ' a , ./c.js,' });
    expect(parsed.kind === 'run' && parsed.options.transportModules).toEqual(['a', './c.js', './b.js', 'pkg#tcp']);
    expect(parsed.kind === 'run' && parsed.options.access.trustTransports).toEqual(['tcp', 'serial']);
    expect(() => parseGuestArgs(['--transport', ' '], {})).toThrow(/--transport needs a module/);
  });

  it('a transport without a kernel identity is refused unless trusted; what it does report is still checked', () => {
    const base = { allowUids: [1000], allowCids: [2] as number[] };
    expect(decideAccess({ transport: 'tcp' }, base)).toMatchObject({ allowed: false, code: 'ERR_VMLINK_PEER_NOT_ALLOWED', message: expect.stringContaining('--trust-transport tcp') });
    expect(decideAccess({ transport: 'tcp' }, { ...base, trustTransports: ['serial'] })).toMatchObject({ allowed: false });
    expect(decideAccess({ transport: 'tcp' }, { ...base, trustTransports: ['tcp'] })).toMatchObject({ allowed: true, key: 'tcp' });
    expect(decideAccess({ transport: 'mine', uid: 5 }, { ...base, trustTransports: ['mine'] })).toMatchObject({ allowed: false, message: expect.stringContaining('uid 5') });
    expect(decideAccess({ transport: 'mine', cid: 7 }, { ...base, trustTransports: ['mine'] })).toMatchObject({ allowed: false, message: expect.stringContaining('CID 7') });
    // Trusting a name never widens the first-party rules.
    expect(decideAccess({ transport: 'unix', uid: 5 }, { ...base, trustTransports: ['unix'] })).toMatchObject({ allowed: false });
  });

  it('Agent.start options as a library: defaults are the CLI defaults (default deny)', () => {
    const options = resolveAgentOptions({ listen: ['tcp://127.0.0.1:0'] });
    expect(options).toMatchObject({ root: undefined, allowExec: [], transports: [], access: { allowCids: [2], trustTransports: [], allowAbstract: false } });
    expect(() => resolveAgentOptions({ listen: ['unix:@x'] })).toThrow(/abstract Unix sockets/);
  });
});
