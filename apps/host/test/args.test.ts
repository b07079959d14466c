import { describe, expect, it } from 'vitest';
import { DEFAULT_TIMEOUT_MS, parseHostArgs } from '../src/args.js';
import { parseEndpoint, planCopy, splitRemoteSpec } from '../src/remote-spec.js';
import { ExitCode, exitCodeFor } from '../src/exit-codes.js';

const common = { json: false, timeoutMs: DEFAULT_TIMEOUT_MS, wait: false, transports: [] };

describe('splitRemoteSpec: the URI:PATH rule (pure)', () => {
  it.each([
    ['unix:/tmp/a.sock:/etc/hosts', 'unix:/tmp/a.sock', '/etc/hosts'],
    ['vsock://3:1024:/var/log/x', 'vsock://3:1024', '/var/log/x'],
    ['vsock://any:1024:/', 'vsock://any:1024', '/'],
    ['virtio-serial+unix:/q/c.sock:/a:/b', 'virtio-serial+unix:/q/c.sock', '/a:/b'],
    ['virtio-serial:org.vmlink.agent.0:/data/f', 'virtio-serial:org.vmlink.agent.0', '/data/f'],
    ['unix:/tmp/with:colon.sock:/x', 'unix:/tmp/with:colon.sock', '/x'],
    // hvsock:PATH:PORT: the remote path starts after the first ':PORT' followed by ':/'.
    ['hvsock:/run/vm/v.sock:1024:/remote/file', 'hvsock:/run/vm/v.sock:1024', '/remote/file'],
    ['hvsock:/run/vm/v.sock:1024:/', 'hvsock:/run/vm/v.sock:1024', '/'],
    ['hvsock:/run/a:/v.sock:52:/x:/y', 'hvsock:/run/a:/v.sock:52', '/x:/y'],
    ['hvsock:/run/a:7/v.sock:52:/x', 'hvsock:/run/a:7/v.sock:52', '/x'],
    ['hvsock:v.sock:4294967295:/d/f', 'hvsock:v.sock:4294967295', '/d/f'],
    ['HVSOCK:/v.sock:3:/f', 'HVSOCK:/v.sock:3', '/f'],
    // No ':PORT:/': the general rule; the transport then refuses 'hvsock:/v.sock' (no port).
    ['hvsock:/v.sock:/f', 'hvsock:/v.sock', '/f'],
  ])('%s -> %s + %s', (arg, uri, path) => {
    expect(splitRemoteSpec(arg)).toEqual({ uri, path });
  });

  it.each(['unix:/tmp/a.sock', 'vsock://3:1024', 'hvsock:/run/v.sock:1024', 'hvsock:/run/v.sock', 'plain.txt', 'dir/file', ':/x', 'unix:'])('%s has no remote path', (arg) => {
    expect(splitRemoteSpec(arg)).toBeUndefined();
  });
});

describe('planCopy (pure)', () => {
  it('downloads and uploads', () => {
    expect(planCopy('unix:/tmp/a.sock:/etc/hosts', 'hosts', undefined)).toEqual({
      direction: 'download', uri: 'unix:/tmp/a.sock', remotePath: '/etc/hosts', localPath: 'hosts',
    });
    expect(planCopy('./big.bin', 'vsock://3:1024:/tmp/big.bin', undefined)).toEqual({
      direction: 'upload', uri: 'vsock://3:1024', remotePath: '/tmp/big.bin', localPath: './big.bin',
    });
  });

  it('hvsock: downloads and uploads split after the port', () => {
    expect(planCopy('hvsock:/tmp/vm/v.sock:1024:/demo/big.bin', 'big.bin', undefined)).toEqual({
      direction: 'download', uri: 'hvsock:/tmp/vm/v.sock:1024', remotePath: '/demo/big.bin', localPath: 'big.bin',
    });
    expect(planCopy('/tmp/big.bin', 'hvsock:/tmp/vm/v.sock:1024:/demo/', undefined)).toEqual({
      direction: 'upload', uri: 'hvsock:/tmp/vm/v.sock:1024', remotePath: '/demo/', localPath: '/tmp/big.bin',
    });
    expect(parseHostArgs(['cp', 'hvsock:/v.sock:1024:/f', 'out'])).toMatchObject({
      name: 'cp', plan: { direction: 'download', uri: 'hvsock:/v.sock:1024', remotePath: '/f' },
    });
  });

  it('with --uri, a leading colon marks the remote side whatever the socket path holds', () => {
    expect(planCopy(':/etc/hosts', 'out', 'unix:/odd:/path.sock')).toEqual({
      direction: 'download', uri: 'unix:/odd:/path.sock', remotePath: '/etc/hosts', localPath: 'out',
    });
    expect(parseEndpoint('unix:/a.sock:/x', 'unix:/b.sock')).toEqual({ kind: 'local', path: 'unix:/a.sock:/x' });
  });

  it('keeps ./ and / local even when they look like URIs', () => {
    expect(parseEndpoint('./unix:/x', undefined)).toEqual({ kind: 'local', path: './unix:/x' });
    expect(parseEndpoint('/abs/unix:/x', undefined)).toEqual({ kind: 'local', path: '/abs/unix:/x' });
  });

  it('needs exactly one remote side', () => {
    expect(() => planCopy('a', 'b', undefined)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_USAGE', message: expect.stringContaining('neither') }));
    expect(() => planCopy('unix:/a:/x', 'unix:/a:/y', undefined)).toThrow(expect.objectContaining({ message: expect.stringContaining('both') }));
  });
});

describe('parseHostArgs (pure)', () => {
  it('parses every command', () => {
    expect(parseHostArgs(['ping', 'unix:/a.sock'])).toEqual({ name: 'ping', uri: 'unix:/a.sock', count: 1, common });
    expect(parseHostArgs(['info', 'unix:/a.sock', '--json'])).toEqual({ name: 'info', uri: 'unix:/a.sock', common: { ...common, json: true } });
    expect(parseHostArgs(['ls', 'unix:/a.sock', '/d'])).toEqual({ name: 'ls', uri: 'unix:/a.sock', path: '/d', common });
    expect(parseHostArgs(['ls', 'unix:/a.sock'])).toMatchObject({ path: '/' });
    expect(parseHostArgs(['cp', 'unix:/a.sock:/f', 'out', '--no-progress'])).toMatchObject({
      name: 'cp', progress: false, plan: { direction: 'download', remotePath: '/f' },
    });
    expect(parseHostArgs(['bench', 'unix:/a.sock', '--rounds', '5', '--size', '2'])).toMatchObject({ rounds: 5, sizeMiB: 2 });
    expect(parseHostArgs(['--uri', 'unix:/a.sock', 'info'])).toMatchObject({ name: 'info', uri: 'unix:/a.sock' });
    expect(parseHostArgs(['ping', 'u', '--wait', '--timeout', '500'])).toMatchObject({ common: { wait: true, timeoutMs: 500 } });
  });

  it('gives everything after -- to exec, including things that look like our flags', () => {
    expect(parseHostArgs(['exec', 'unix:/a.sock', '--', 'echo', '--json', '-n', 'hi'])).toEqual({
      name: 'exec', uri: 'unix:/a.sock', command: 'echo', args: ['--json', '-n', 'hi'], stdin: true, common,
    });
    expect(() => parseHostArgs(['exec', 'unix:/a.sock', 'echo'])).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_USAGE' }));
  });

  it('has --help on every command and on its own', () => {
    expect(parseHostArgs(['--help'])).toEqual({ name: 'help', topic: undefined });
    for (const name of ['ping', 'info', 'ls', 'stat', 'cp', 'mkdir', 'rm', 'mv', 'chmod', 'exec', 'bench'] as const) {
      expect(parseHostArgs([name, '--help'])).toEqual({ name: 'help', topic: name });
    }
  });

  it('rejects bad command lines with ERR_VMLINK_USAGE', () => {
    for (const argv of [[], ['frobnicate'], ['ping'], ['ping', 'u', 'extra'], ['ping', 'u', '--count', '0'], ['cp', 'a'], ['info', 'u', '--nope']]) {
      expect(() => parseHostArgs(argv)).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_USAGE' }));
    }
  });
});

describe('parseHostArgs: options per command, suggestions, version (pure)', () => {
  const usage = (argv: string[]): Error => {
    try {
      parseHostArgs(argv, {});
    } catch (error) {
      expect((error as { code?: string }).code).toBe('ERR_VMLINK_USAGE');
      return error as Error;
    }
    throw new Error(`${argv.join(' ')} parsed`);
  };

  it('parses the file management commands', () => {
    expect(parseHostArgs(['stat', 'u', '/f'], {})).toEqual({ name: 'stat', uri: 'u', path: '/f', common });
    expect(parseHostArgs(['mkdir', 'u', '/d', '-p', '--mode', '750'], {})).toEqual({ name: 'mkdir', uri: 'u', path: '/d', parents: true, mode: 0o750, common });
    expect(parseHostArgs(['rm', '-r', 'u', '/d'], {})).toEqual({ name: 'rm', uri: 'u', path: '/d', recursive: true, common });
    expect(parseHostArgs(['mv', 'u', '/a', '/b'], {})).toEqual({ name: 'mv', uri: 'u', from: '/a', to: '/b', common });
    expect(parseHostArgs(['chmod', 'u', '0o640', '/f'], {})).toEqual({ name: 'chmod', uri: 'u', mode: 0o640, path: '/f', common });
    expect(parseHostArgs(['cp', '-r', 'unix:/a.sock:/d', 'out', '--resume'], {})).toMatchObject({ name: 'cp', recursive: true, resume: true });
    expect(usage(['chmod', 'u', 'rwx', '/f']).message).toMatch(/octal mode such as 755, got 'rwx'/);
    expect(parseHostArgs(['cp', 'in', 'unix:/a.sock:/f', '--resume'], {})).toMatchObject({ name: 'cp', plan: { direction: 'upload' }, resume: true });
  });

  it('an option of another command is an error naming its owner', () => {
    expect(usage(['ls', 'u', '/', '--count', '3']).message).toBe("option '--count' belongs to 'ping', it is not an option of 'ls'");
    expect(usage(['ping', 'u', '-r']).message).toBe("option '-r' belongs to 'cp' and 'rm', it is not an option of 'ping'");
    expect(usage(['info', 'u', '--resume']).message).toMatch(/belongs to 'cp'/);
  });

  it('did you mean: commands and flags', () => {
    expect(usage(['pnig', 'u']).message).toMatch(/unknown command 'pnig' \(did you mean 'ping'\?\)/);
    expect(usage(['mkdri', 'u', '/d']).message).toMatch(/did you mean 'mkdir'/);
    expect(usage(['frobnicate']).message).not.toMatch(/did you mean/);
    expect(usage(['ping', 'u', '--cuont', '2']).message).toMatch(/unknown option '--cuont' \(did you mean '--count'\?\)/);
    expect(usage(['cp', 'unix:/a.sock:/a', 'b', '--recursiv']).message).toMatch(/did you mean '--recursive'/);
    expect(usage(['info', 'u', '--jsno']).message).toMatch(/did you mean '--json'/);
    expect(usage(['info', 'u', '--timeout']).message).toMatch(/'--timeout TIME' needs a value/);
    expect(usage(['info', 'u', '--json=yes']).message).toMatch(/'--json' takes no value/);
    expect(usage(['ls', 'u', '--', 'x']).message).toMatch(/'--' is only for exec/);
  });

  it('-V/--version anywhere, -h/--help', () => {
    expect(parseHostArgs(['-V'], {})).toEqual({ name: 'version' });
    expect(parseHostArgs(['--version'], {})).toEqual({ name: 'version' });
    expect(parseHostArgs(['-h'], {})).toEqual({ name: 'help', topic: undefined });
    expect(parseHostArgs(['rm', '-h'], {})).toEqual({ name: 'help', topic: 'rm' });
  });

  it('--transport and VMLINK_TRANSPORTS', () => {
    expect(parseHostArgs(['ping', 'u', '--transport', './a.js', '--transport', 'b'], { VMLINK_TRANSPORTS: 'x,y' })).toMatchObject({ common: { transports: ['x', 'y', './a.js', 'b'] } });
  });
});

describe('exitCodeFor (pure)', () => {
  it('maps causes to the documented codes', () => {
    expect(exitCodeFor('ECONNREFUSED')).toBe(ExitCode.UNREACHABLE);
    expect(exitCodeFor('ERR_VMLINK_EXEC_DENIED')).toBe(ExitCode.POLICY);
    expect(exitCodeFor('ERR_VMLINK_PATH_ESCAPE')).toBe(ExitCode.POLICY);
    expect(exitCodeFor('ERR_VMLINK_CHECKSUM_MISMATCH')).toBe(ExitCode.INTEGRITY);
    expect(exitCodeFor('ERR_VMLINK_CONNECTION_LOST')).toBe(ExitCode.CONNECTION_LOST);
    expect(exitCodeFor('ERR_VMLINK_NOT_REGULAR_FILE')).toBe(ExitCode.REMOTE_FILE);
    expect(exitCodeFor('ERR_VMLINK_PEER_NOT_ALLOWED')).toBe(ExitCode.POLICY);
    expect(exitCodeFor('ERR_VMLINK_TOO_MANY_CONNECTIONS')).toBe(ExitCode.POLICY);
    expect(exitCodeFor('ERR_VMLINK_METHOD_BLOCKED')).toBe(ExitCode.POLICY);
    expect(exitCodeFor('ERR_VMLINK_BUSY')).toBe(ExitCode.TIMEOUT);
    expect(exitCodeFor('SOMETHING_NEW')).toBe(ExitCode.FAILURE);
    expect(exitCodeFor(undefined)).toBe(ExitCode.FAILURE);
  });
});

describe('cp -r: names an agent lists (pure)', () => {
  it('accepts one path component only: a hostile agent cannot steer writes with .. or /', async () => {
    const { isPlainName } = await import('../src/commands/cp.js');
    for (const good of ['a', '.hidden', 'a b', '..x', 'x..']) expect(isPlainName(good), good).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', '/etc', '../x', 'a\0b', 42]) expect(isPlainName(bad), String(bad)).toBe(false);
  });
});
