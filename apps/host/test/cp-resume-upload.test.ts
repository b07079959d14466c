/**
 * cp --resume for uploads (#12 §3), against a real agent over unix: an upload broken
 * off mid-way leaves its part with the agent; the next resumable copy continues from it
 * after the agent hashed it (fs.partial) and checks it again (fs.write offset); a part
 * whose bytes were corrupted is never appended to: the copy starts over. Most cases drive
 * cpCommand with a real client (connectAgent); one runs the vmlink CLI itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { uploadPartName } from '@vmlink/agent-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentClient } from '../src/agent-client.js';
import { cpCommand } from '../src/commands/cp.js';
import { connectAgent } from '../src/rpc-client.js';
import { type AgentProcess, runVmlink, startAgent } from './helpers.js';

const MIB = 1024 * 1024;
const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

function quietOutput(): { out: { stdout: PassThrough; stderr: PassThrough }; text: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let text = '';
  stdout.setEncoding('utf8').on('data', (t: string) => (text += t));
  stderr.resume();
  return { out: { stdout, stderr }, text: () => text };
}

describe('cp --resume for uploads', () => {
  let work: string;
  let root: string;
  let agent: AgentProcess;
  const data = randomBytes(24 * MIB);
  const dataSha = sha(data);
  let local: string;
  const partPath = (): string => path.join(root, 'up', uploadPartName('big.bin', dataSha));
  const connect = (): Promise<AgentClient> => connectAgent(agent.uri, { timeoutMs: 20_000 });

  /** An upload that sends `bytes` and then loses its connection, as a Ctrl-C or a dead link would. */
  async function brokenUpload(bytes: number): Promise<number> {
    const client = await connect();
    let sent = 0;
    let stalled!: () => void;
    const stalledAt = new Promise<void>((resolve) => (stalled = resolve));
    async function* source(): AsyncGenerator<Uint8Array> {
      while (sent < bytes) {
        const chunk = data.subarray(sent, Math.min(bytes, sent + MIB));
        sent += chunk.length;
        yield chunk;
      }
      stalled();
      await new Promise(() => undefined); // never ends: the connection goes first
    }
    const writing = client.write('/up/big.bin', source(), data.length, dataSha, { resume: true }).catch((error: unknown) => error);
    await stalledAt;
    const logged = agent.log().split('req fs.write').length;
    await client.close();
    await writing;
    // The agent is done with the request (and its part file) once it logged it.
    while (agent.log().split('req fs.write').length === logged) await new Promise((r) => setTimeout(r, 20));
    return (await stat(partPath())).size;
  }

  async function resumeUpload(): Promise<{ code: number; summary: string; resumedFrom?: number }> {
    const client = await connect();
    const { out, text } = quietOutput();
    try {
      const code = await cpCommand(
        client,
        {
          name: 'cp',
          plan: { direction: 'upload', uri: agent.uri, remotePath: '/up/big.bin', localPath: local },
          progress: false,
          recursive: false,
          resume: true,
          common: { json: true, timeoutMs: 20_000, wait: false, transports: [] },
        },
        out,
      );
      const summary = text();
      return { code, summary, ...(JSON.parse(summary) as { resumedFrom?: number }) };
    } finally {
      await client.close();
    }
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'vmlink-resume-up-'));
    root = path.join(work, 'root');
    await mkdir(path.join(root, 'up'), { recursive: true });
    local = path.join(work, 'big.bin');
    await writeFile(local, data);
    agent = await startAgent(path.join(work, 'agent.sock'), ['--root', root]);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await rm(work, { recursive: true, force: true });
  });

  it('continues after the bytes the agent kept, checked by SHA-256; the part is renamed into place', async () => {
    const kept = await brokenUpload(8 * MIB);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(8 * MIB);
    expect(await readdir(path.join(root, 'up'))).toEqual([path.basename(partPath())]); // no target yet, no temp file
    const resumed = await resumeUpload();
    expect(resumed.code).toBe(0);
    expect(resumed.resumedFrom).toBe(kept);
    expect(sha(await readFile(path.join(root, 'up', 'big.bin')))).toBe(dataSha);
    expect(await readdir(path.join(root, 'up'))).toEqual(['big.bin']);
    // The agent's request line says where it continued (bytes= is the whole file).
    expect(agent.log()).toMatch(new RegExp(`req fs\\.write .*result=OK.* resumedFrom=${kept}`));
  });

  it('a corrupted part is not appended to: the copy starts over from 0', async () => {
    await rm(path.join(root, 'up', 'big.bin'));
    const kept = await brokenUpload(8 * MIB);
    expect(kept).toBeGreaterThan(1000);
    const part = await open(partPath(), 'r+');
    await part.write(Buffer.from([0xff ^ data[1000]!]), 0, 1, 1000);
    await part.close();
    const again = await resumeUpload();
    expect(again.code).toBe(0);
    expect(again.resumedFrom).toBeUndefined();
    expect(sha(await readFile(path.join(root, 'up', 'big.bin')))).toBe(dataSha);
    expect(await readdir(path.join(root, 'up'))).toEqual(['big.bin']);
  });

  it('the agent checks the prefix itself: a wrong prefixSha256 is refused and the part discarded', async () => {
    const kept = await brokenUpload(4 * MIB);
    const client = await connect();
    try {
      const rest = async function* (): AsyncGenerator<Uint8Array> {
        yield data.subarray(kept);
      };
      const refused = await client
        .write('/up/big.bin', rest(), data.length, dataSha, { resume: true, offset: kept, prefixSha256: sha(Buffer.from('not the prefix')) })
        .catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'ERR_VMLINK_CHECKSUM_MISMATCH' });
      expect((refused as Error).message).toMatch(/does not start with the \d+ bytes the client has; discarded/);
      await expect(stat(partPath())).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await client.partial('/up/big.bin', dataSha)).toEqual({ length: 0, sha256: sha(Buffer.alloc(0)) });
      // An offset without resume, or past the size: refused with a code naming the value.
      const bad = await client.write('/up/big.bin', rest(), data.length, dataSha, { offset: 5 }).catch((error: unknown) => error);
      expect(bad).toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS' });
      const past = await client
        .write('/up/big.bin', rest(), data.length, dataSha, { resume: true, offset: data.length + 1, prefixSha256: dataSha })
        .catch((error: unknown) => error);
      expect(past).toMatchObject({ code: 'ERR_VMLINK_INVALID_PARAMS' });
      expect((past as Error).message).toContain(String(data.length + 1));
    } finally {
      await client.close();
    }
  });

  it('the vmlink CLI: cp --resume LOCAL URI:/PATH continues the upload the agent kept', async () => {
    await rm(path.join(root, 'up', 'big.bin'), { force: true });
    const kept = await brokenUpload(8 * MIB);
    expect(kept).toBeGreaterThan(0);
    const run = await runVmlink(['cp', '--resume', '--json', local, `${agent.uri}:/up/big.bin`], { timeoutMs: 60_000 });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ resumedFrom: kept });
    expect(sha(await readFile(path.join(root, 'up', 'big.bin')))).toBe(dataSha);
  }, 90_000);
});
