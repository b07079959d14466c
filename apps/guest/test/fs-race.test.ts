import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBackend, type AioBackend } from '@vmlink/aio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDirectory, readFileStreamed, statPath, sweepStaleTempFiles, tempNameFor, writeFileAtomic } from '../src/methods/files.js';
import { RootJail } from '../src/policy/confine.js';

/**
 * Issue 14 item 1: an attacker inside the guest swaps a directory under --root with a
 * symlink to a directory outside, as fast as it can (renameat2 RENAME_EXCHANGE, so one of
 * the two names is always a directory and the other always the symlink), while the real
 * file methods run against paths through that directory. The same loop swaps a regular
 * file with a symlink to a file outside (the final component), and a symlink inside whose
 * text climbs with `..` through the swapped directory is resolved too. Nothing outside may be written,
 * listed, stat'ed, read or swept. Runs for RACE_MS (the issue asks for at least 20 s).
 */
const RACE_MS = 20_000;

/** Exchanges pairs of names (argv: a1 b1 a2 b2...) in a tight loop until SIGTERM; prints the number of swaps. */
const ATTACKER = `
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
names = [arg.encode() for arg in sys.argv[1:]]
pairs = list(zip(names[0::2], names[1::2]))
swaps = 0
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
print('ready', flush=True)
while not stop:
    for a, b in pairs:
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            print('renameat2 failed', ctypes.get_errno(), flush=True)
            sys.exit(3)
        swaps += 1
print('swaps', swaps, flush=True)
`;

async function* oneChunk(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}

describe('file methods against a directory <-> symlink swap loop (renameat2 RENAME_EXCHANGE)', () => {
  let base: string;
  let root: string;
  let outside: string;
  let jail: RootJail;
  let backend: AioBackend;
  let attacker: ChildProcess | undefined;
  const marker = `MARKER-${randomBytes(8).toString('hex')}`;
  const secret = `SECRET-${randomBytes(16).toString('hex')}-outside-content`;
  const insideText = 'inside';
  const staleOutside = tempNameFor('victim', 2 ** 22 + 777); // a pid above pid_max: "dead"

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'vmlink-race-'));
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    await mkdir(path.join(root, 'd', 'deep'), { recursive: true });
    await mkdir(path.join(outside, 'deep'), { recursive: true });
    // Same names on both sides: any escape reads, lists or writes the outside twin.
    await writeFile(path.join(root, 'd', 'inside.txt'), insideText);
    await writeFile(path.join(root, 'd', 'deep', 'inside.txt'), insideText);
    await writeFile(path.join(outside, 'inside.txt'), secret);
    await writeFile(path.join(outside, 'deep', 'inside.txt'), secret);
    await writeFile(path.join(outside, marker), secret);
    await writeFile(path.join(outside, staleOutside), secret);
    await symlink(outside, path.join(root, 'l'));
    // A file <-> symlink swap on the last component, in a directory nobody swaps.
    await mkdir(path.join(root, 'f'));
    await writeFile(path.join(root, 'f', 'inside.txt'), insideText);
    await symlink(path.join(outside, 'inside.txt'), path.join(root, 'f', 'flink'));
    // `..` from a symlink's text, through the swapped directory: d/deep/.. is d.
    await symlink('d/deep/..', path.join(root, 's'));
    jail = await RootJail.create(root);
    backend = await createBackend('fs');
  });

  afterAll(async () => {
    attacker?.kill('SIGKILL');
    await backend?.close();
    await rm(base, { recursive: true, force: true });
  });

  it(`finds nothing outside after ${RACE_MS / 1000} s of fs.stat/list/read/write and the sweep`, { timeout: RACE_MS + 60_000 }, async () => {
    const child = spawn('python3', ['-c', ATTACKER, ...[['d', 'l'], ['f/inside.txt', 'f/flink']].flat().map((name) => path.join(root, name))], { stdio: ['ignore', 'pipe', 'inherit'] });
    attacker = child;
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => { output += text; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => { if (output.includes('ready')) resolve(); });
      child.on('error', reject);
      void exited.then((code) => reject(new Error(`attacker exited early (${code}): ${output}`)));
    });

    const leaks: string[] = [];
    const seen = (what: string, value: unknown): void => {
      const text = JSON.stringify(value);
      if (text.includes(marker) || text.includes(secret) || text.includes('SECRET-')) leaks.push(`${what}: ${text.slice(0, 200)}`);
    };
    const successes = { stat: 0, list: 0, read: 0, write: 0 };
    const errorCodes = new Map<string, number>();
    const failed = (error: unknown): void => {
      const code = String((error as { code?: unknown }).code);
      errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1);
      // The client named the marker itself: an error may echo that, never outside content or paths.
      const message = (error as Error).message;
      if (message.includes(secret) || message.includes(outside)) leaks.push(`error: ${message}`);
    };
    const signal = new AbortController().signal;
    const payload = Buffer.from('attacker-visible write\n');
    const payloadSha = createHash('sha256').update(payload).digest('hex');
    let round = 0;
    const deadline = Date.now() + RACE_MS;
    while (Date.now() < deadline) {
      round += 1;
      const ops: Promise<void>[] = [];
      for (const remote of ['/f/inside.txt', '/f/flink', '/s/inside.txt']) {
        ops.push(statPath(jail, remote).then((r) => {
          seen('stat', r);
          if (r.size !== insideText.length) leaks.push(`stat: ${remote} has the outside twin's size ${r.size}`);
          successes.stat += 1;
        }, failed));
        ops.push(
          readFileStreamed(backend, jail, remote, async (chunk) => seen('read', Buffer.from(chunk).toString('latin1')), signal)
            .then(() => { successes.read += 1; }, failed),
        );
      }
      ops.push(listDirectory(jail, '/s', 1000).then((r) => { seen('list', r); successes.list += 1; }, failed));
      for (const dir of ['/d', '/d/deep']) {
        ops.push(statPath(jail, `${dir}/inside.txt`).then((r) => {
          seen('stat', r);
          if (r.size !== insideText.length) leaks.push(`stat: ${dir}/inside.txt has the outside twin's size ${r.size}`);
          successes.stat += 1;
        }, failed));
        ops.push(statPath(jail, `${dir}/${marker}`).then((r) => { leaks.push(`stat of a file that exists only outside: ${JSON.stringify(r)}`); }, failed));
        ops.push(listDirectory(jail, dir, 1000).then((r) => { seen('list', r); successes.list += 1; }, failed));
        ops.push(
          readFileStreamed(backend, jail, `${dir}/inside.txt`, async (chunk) => seen('read', Buffer.from(chunk).toString('latin1')), signal)
            .then(() => { successes.read += 1; }, failed),
        );
        ops.push(
          readFileStreamed(backend, jail, `${dir}/${marker}`, async (chunk) => seen('read marker', Buffer.from(chunk).toString('latin1')), signal)
            .then(() => { leaks.push(`read of a file that exists only outside: ${dir}/${marker}`); }, failed),
        );
        ops.push(
          writeFileAtomic(backend, jail, `${dir}/w-${round % 50}`, oneChunk(payload), { maxBytes: 1024, expectedSha256: payloadSha, signal })
            .then(() => { successes.write += 1; }, failed),
        );
      }
      if (round % 10 === 0) ops.push(sweepStaleTempFiles(root).then((removed) => seen('sweep', removed), failed));
      await Promise.all(ops);
    }
    child.kill('SIGTERM');
    await exited;
    const swaps = Number(/swaps (\d+)/.exec(output)?.[1] ?? 0);

    // The attacker really raced, and the methods really ran and succeeded many times.
    expect(swaps).toBeGreaterThan(1000);
    for (const [kind, count] of Object.entries(successes)) expect(count, `${kind} successes`).toBeGreaterThan(10);
    // Nothing outside was seen or touched.
    const written = (await readdir(outside)).filter((name) => name.startsWith('w-')).length;
    const kinds = new Map<string, number>();
    for (const leak of leaks) kinds.set(leak.split(':')[0] as string, (kinds.get(leak.split(':')[0] as string) ?? 0) + 1);
    console.log(`race: ${leaks.length} leaks ${JSON.stringify(Object.fromEntries(kinds))}, ${written} files written outside`);
    expect(leaks).toEqual([]);
    expect((await readdir(outside)).sort()).toEqual([marker, staleOutside, 'deep', 'inside.txt'].sort());
    expect(await readdir(path.join(outside, 'deep'))).toEqual(['inside.txt']);
    expect(await readFile(path.join(outside, 'inside.txt'), 'utf8')).toBe(secret);
    console.log(`race: ${round} rounds, ${swaps} swaps, successes ${JSON.stringify(successes)}, errors ${JSON.stringify(Object.fromEntries(errorCodes))}`);
  });
});
