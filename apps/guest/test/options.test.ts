import { describe, expect, it } from 'vitest';
import { MethodAccess } from '../src/access/method-access.js';
import { DEFAULT_LIMITS, DEFAULT_LISTEN, parseGuestArgs } from '../src/options.js';
import { ExecPolicy, parseAllowExec } from '../src/policy/exec-policy.js';

describe('parseGuestArgs (pure)', () => {
  it('defaults to the guest transports, auto AIO, no root and no exec', () => {
    expect(parseGuestArgs([], {})).toEqual({
      kind: 'run',
      options: {
        listen: [...DEFAULT_LISTEN],
        transportModules: [],
        aio: 'auto',
        root: undefined,
        allowExec: [],
        allowEnv: [],
        allowForward: [],
        allowHardlinks: false,
        access: { allowUids: [process.getuid?.()], allowCids: [2], allowAbstract: false, methods: MethodAccess.all(), trustTransports: [] },
        jsonLog: false,
        quiet: false,
        limits: DEFAULT_LIMITS,
      },
    });
    expect(DEFAULT_LIMITS).toMatchObject({ maxConnections: 64, maxConnectionsPerPeer: 56, execTimeoutMs: 60_000 });
  });

  it('takes the access flags: uids, CIDs (or any), abstract sockets, method lists', () => {
    const parsed = parseGuestArgs([
      '--listen', 'unix:@vmlink', '--allow-abstract', '--allow-uid', '0,1000', '--allow-uid', '1001',
      '--allow-cid', '1', '--allow-cid', '3', '--allow-rpcs', 'ping,info,exec', '--block-rpcs', 'exec',
      '--allow-hardlinks', '--exec-timeout', '5000', '--max-connections', '10', '--idle-timeout', '0',
      '--frame-timeout', '2500', '--memory-budget', '64M',
    ]);
    if (parsed.kind !== 'run') throw new Error('expected run');
    const { access, limits, allowHardlinks } = parsed.options;
    expect(access.allowUids).toEqual([0, 1000, 1001]);
    expect(access.allowCids).toEqual([1, 3]);
    expect(access.allowAbstract).toBe(true);
    expect(access.methods.methods).toEqual(['ping', 'info']);
    expect(allowHardlinks).toBe(true);
    expect(limits).toMatchObject({
      execTimeoutMs: 5000,
      maxConnections: 10,
      maxConnectionsPerPeer: 8, // a quarter of a small cap is kept for other peers
      idleTimeoutMs: 0,
      frameTimeoutMs: 2500,
      memoryBudgetBytes: 64 * 1024 * 1024,
    });
    const any = parseGuestArgs(['--allow-cid', 'any']);
    expect(any.kind === 'run' && any.options.access.allowCids).toBe('any');
  });

  it('refuses abstract sockets without --allow-abstract, unknown methods and bad ids, naming them', () => {
    const usage = (message: string) => expect.objectContaining({ code: 'ERR_VMLINK_USAGE', message: expect.stringContaining(message) });
    expect(() => parseGuestArgs(['--listen', 'unix:@agent'])).toThrow(usage('unix:@agent'));
    expect(() => parseGuestArgs(['--allow-rpcs', 'ping,fs.nuke'])).toThrow(usage("'fs.nuke'"));
    expect(() => parseGuestArgs(['--block-rpcs', 'shutdown'])).toThrow(usage("'shutdown'"));
    expect(() => parseGuestArgs(['--allow-uid', 'root'])).toThrow(usage("'root'"));
    expect(() => parseGuestArgs(['--allow-cid=-1'])).toThrow(usage("'-1'"));
    expect(() => parseGuestArgs(['--memory-budget', 'lots'])).toThrow(usage("'lots'"));
    expect(() => parseGuestArgs(['--exec-timeout', '0'])).toThrow(usage("'0'"));
    expect(() => parseGuestArgs(['--max-connections', '4', '--max-connections-per-peer', '5'])).toThrow(usage('exceeds'));
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

describe('ExecPolicy.check', () => {
  it('allows exactly the listed names and nothing that merely resembles them', async () => {
    const policy = await ExecPolicy.create(parseAllowExec(['uname, echo', '/usr/bin/id']));
    expect(policy.check('uname')).toBe('uname');
    expect(policy.check('/usr/bin/id')).toBe('/usr/bin/id');
    for (const denied of ['sh', './uname', '/tmp/uname', 'uname ', 'id', '/usr/bin/uname']) {
      expect(() => policy.check(denied)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_EXEC_DENIED' }));
    }
  });

  it('says exec is disabled when nothing is allowed, and rejects non-strings naming them', async () => {
    const policy = await ExecPolicy.create([]);
    expect(() => policy.check('uname')).toThrow(expect.objectContaining({ message: expect.stringContaining('disabled') }));
    expect(() => policy.check(42)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_INVALID_PARAMS', message: expect.stringContaining('42') }));
  });
});
