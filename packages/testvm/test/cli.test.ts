// The CLI's own surface, without booting a guest: version, help, doctor --json, usage errors.
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseDoctorArgs, parseRunArgs, wantsHelp } from '../src/cli/args.js';
import { editDistance, suggest } from '../src/cli/suggest.js';
import { cli } from './helpers.js';

const packageJson = fileURLToPath(new URL('../package.json', import.meta.url));

interface DoctorJsonShape {
  ok: boolean;
  checks: { name: string; ok: boolean; required: boolean; detail: string; fixPackage?: string }[];
  missingPackages: string[];
  fix: string | null;
}

describe('vmlink-testvm --version and --help', () => {
  it('--version (and -v) prints the package version alone', async () => {
    const { version } = JSON.parse(await readFile(packageJson, 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      expect(await cli([flag])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
  });

  it.each(['run', 'info', 'doctor'])('%s --help prints that command\'s usage only, exit 0', async (command) => {
    const others = ['run', 'info', 'doctor'].filter((c) => c !== command);
    for (const argv of [[command, '--help'], [command, '-h'], ['help', command]]) {
      const res = await cli(argv);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(new RegExp(`^Usage:\\n {2}vmlink-testvm ${command} `));
      for (const other of others) expect(res.stdout).not.toContain(`vmlink-testvm ${other} `);
    }
  });

  it('--help wins over other options, so a half-typed command line still gets help', async () => {
    const res = await cli(['run', '--share', '/nonexistent', '--bogus', '--help']);
    expect(res).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage:\n {2}vmlink-testvm run /) });
  });

  it('--help prints every command; no command at all is a usage error on stderr', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['run', 'info', 'doctor']) expect(help.stdout).toContain(`vmlink-testvm ${command} `);
    const none = await cli([]);
    expect(none).toMatchObject({ code: 2, stdout: '', stderr: expect.stringMatching(/no command given\n\nUsage:/) });
  });
});

describe('vmlink-testvm usage errors exit 2 before anything boots', () => {
  it.each([
    [['rn'], /unknown command 'rn' \(did you mean 'run'\?\)/],
    [['doctr'], /unknown command 'doctr' \(did you mean 'doctor'\?\)/],
    [['--verison'], /unknown option '--verison' \(did you mean '--version'\?\)/],
    [['frobnicate'], /unknown command 'frobnicate'\n/],
    [['help', 'rnu'], /no help for 'rnu' \(did you mean 'run'\?\)/],
    [['doctor', '--jsn'], /unknown option '--jsn' \(did you mean '--json'\?\)\n\nUsage:\n {2}vmlink-testvm doctor/],
    [['run', '--shar', '.', '--', 'true'], /unknown option '--shar' \(did you mean '--share'\?\)\n\nUsage:\n {2}vmlink-testvm run/],
    [['run', 'node', '-e', '1'], /unexpected argument 'node': .*the guest command goes after --/],
    [['run', '--memory', 'lots', '--', 'true'], /--memory needs a positive integer, got 'lots'/],
    [['info', '--', 'ls'], /info runs no command; got 'ls' \(use run\)/],
  ])('%o', async (argv, message) => {
    const res = await cli(argv);
    expect(res.stdout).toBe('');
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^vmlink-testvm: \[ERR_VMLINK_TESTVM_USAGE\] /);
    expect(res.stderr).toMatch(message);
  });
});

describe('vmlink-testvm doctor --json', () => {
  it('prints one JSON document: every check, ok, missing packages and the fix line, exit code as ok says', async () => {
    const res = await cli(['doctor', '--json']);
    const report = JSON.parse(res.stdout) as DoctorJsonShape;
    expect(res.code).toBe(report.ok ? 0 : 1);
    expect(report.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['architecture', 'QEMU', 'busybox (static)', 'guest kernel', '/dev/kvm']));
    for (const check of report.checks) {
      expect(check).toEqual(expect.objectContaining({ name: expect.any(String), ok: expect.any(Boolean), required: expect.any(Boolean), detail: expect.any(String) }));
    }
    expect(report.ok).toBe(report.checks.every((c) => c.ok || !c.required));
    expect(report.fix === null).toBe(report.missingPackages.length === 0);
  });

  it('names the missing QEMU package and the apt-get line when QEMU is not on PATH (exit 1)', async () => {
    const res = await cli(['doctor', '--json'], { ...process.env, PATH: '/usr/bin/nonexistent:/bin/nonexistent' });
    expect(res.code).toBe(1);
    const report = JSON.parse(res.stdout) as DoctorJsonShape;
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => c.name === 'QEMU')).toMatchObject({ ok: false, required: true, fixPackage: 'qemu-system-x86' });
    expect(report.missingPackages).toContain('qemu-system-x86');
    expect(report.fix).toMatch(/^apt-get update && apt-get install -y .*qemu-system-x86/);
  });
});

describe('argument parsing (pure logic)', () => {
  it('help is asked for only before --: after it, --help belongs to the guest command', () => {
    expect(wantsHelp(['--share', '.', '--help'])).toBe(true);
    expect(wantsHelp(['-h'])).toBe(true);
    expect(wantsHelp(['--', 'node', '--help'])).toBe(false);
    expect(parseRunArgs(['--', 'node', '--help'], true).command).toEqual(['node', '--help']);
  });

  it('doctor flags', () => {
    expect(parseDoctorArgs([])).toEqual({ install: false, probeKvm: false, json: false });
    expect(parseDoctorArgs(['--json', '--probe-kvm'])).toEqual({ install: false, probeKvm: true, json: true });
    expect(() => parseDoctorArgs(['extra'])).toThrow(expect.objectContaining({ code: 'ERR_VMLINK_TESTVM_USAGE' }));
  });

  it('suggests only plausible typos', () => {
    expect(editDistance('run', 'run')).toBe(0);
    expect(editDistance('rnu', 'run')).toBe(1); // a swap counts once
    expect(suggest('dcotor', ['run', 'info', 'doctor'])).toBe('doctor');
    expect(suggest('inf', ['run', 'info', 'doctor'])).toBe('info');
    expect(suggest('--guest', ['--guest-cid', '--share'])).toBe('--guest-cid');
    expect(suggest('xyz', ['run', 'info', 'doctor'])).toBeUndefined();
    expect(suggest('r', ['run', 'info'])).toBeUndefined();
  });
});
