import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, DEFAULT_LISTEN, parseGuestArgs } from '../src/options.js';
import { ExecPolicy, parseAllowExec } from '../src/policy/exec-policy.js';

describe('parseGuestArgs (pure)', () => {
  it('defaults to the guest transports, auto AIO, no root and no exec', () => {
    expect(parseGuestArgs([])).toEqual({
      kind: 'run',
      options: { listen: [...DEFAULT_LISTEN], aio: 'auto', root: undefined, allowExec: [], jsonLog: false, quiet: false, limits: DEFAULT_LIMITS },
    });
  });

  it('takes repeated --listen, --aio, --root and comma/repeat --allow-exec', () => {
    const parsed = parseGuestArgs([
      '--listen', 'unix:/tmp/a.sock', '--listen', 'vsock://any:1024',
      '--aio', 'threadpool', '--root', '/srv', '--allow-exec', 'uname,echo', '--allow-exec', '/bin/true', '--json',
      '--max-streams', '4',
    ]);
    expect(parsed).toMatchObject({
      kind: 'run',
      options: {
        listen: ['unix:/tmp/a.sock', 'vsock://any:1024'],
        aio: 'threadpool',
        root: '/srv',
        allowExec: ['uname', 'echo', '/bin/true'],
        jsonLog: true,
        limits: { maxConcurrentPerConnection: 4 },
      },
    });
  });

  it('answers --help and --version', () => {
    expect(parseGuestArgs(['--help'])).toEqual({ kind: 'help' });
    expect(parseGuestArgs(['--version'])).toEqual({ kind: 'version' });
  });

  it('rejects bad input with ERR_VMLINK_USAGE naming the value', () => {
    const usage = (message: string) => expect.objectContaining({ code: 'ERR_VMLINK_USAGE', message: expect.stringContaining(message) });
    expect(() => parseGuestArgs(['--aio', 'uring'])).toThrow(usage("'uring'"));
    expect(() => parseGuestArgs(['--bogus'])).toThrow(usage('--bogus'));
    expect(() => parseGuestArgs(['extra'])).toThrow(usage('extra'));
    expect(() => parseGuestArgs(['--grace-ms=-5'])).toThrow(usage("'-5'"));
    expect(() => parseGuestArgs(['--allow-exec', 'bin/sh'])).toThrow(usage("'bin/sh'"));
  });
});

describe('ExecPolicy (pure)', () => {
  it('allows exactly the listed names and nothing that merely resembles them', () => {
    const policy = new ExecPolicy(parseAllowExec(['uname, echo', '/usr/bin/id']));
    expect(policy.check('uname')).toBe('uname');
    expect(policy.check('/usr/bin/id')).toBe('/usr/bin/id');
    for (const denied of ['sh', './uname', '/tmp/uname', 'uname ', 'id', '/usr/bin/uname']) {
      expect(() => policy.check(denied)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_EXEC_DENIED' }));
    }
  });

  it('says exec is disabled when nothing is allowed, and rejects non-strings', () => {
    const policy = new ExecPolicy([]);
    expect(() => policy.check('uname')).toThrow(expect.objectContaining({ message: expect.stringContaining('disabled') }));
    expect(() => policy.check(42)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_PARAMS' }));
  });
});
