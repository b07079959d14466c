import { randomFill } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ExitCode } from '../src/exit-codes.js';
import { type Story, rate, sha256File } from './demo-kit.js';

const randomFillAsync = promisify(randomFill);

export const DEMO_FILE_MIB = 64;

async function generateFile(file: string, mib: number): Promise<void> {
  const handle = await open(file, 'w');
  try {
    const block = Buffer.allocUnsafe(1024 * 1024);
    for (let i = 0; i < mib; i += 1) {
      await randomFillAsync(block);
      await handle.write(block);
    }
  } finally {
    await handle.close();
  }
}

export interface AgentStoryOptions {
  /** How the agent's side hashes a file it holds (e.g. `sha256sum` in the guest), to show both ends agree. */
  readonly remoteSha256?: (remotePath: string) => Promise<string | undefined>;
}

/**
 * The story both demos tell against an agent at `uri` whose root holds an empty `/demo`
 * and whose allow-list holds `uname` and `echo`: ping, info, a 64 MiB round trip verified
 * by SHA-256 (with the time it took), an allowed exec, a refused exec and a refused path
 * escape.
 */
export interface AgentStoryTimings {
  /** Whole CLI runs of the 64 MiB upload and download, in ms (undefined when it failed). */
  readonly uploadMs: number | undefined;
  readonly downloadMs: number | undefined;
}

export async function runAgentStory(story: Story, uri: string, workDir: string, options: AgentStoryOptions = {}): Promise<AgentStoryTimings> {
  story.heading(`ping the agent at ${uri}`);
  await story.cli(['ping', uri, '--count', '3'], ExitCode.OK, 'three round trips');

  story.heading('info: what the agent knows about its machine');
  await story.cli(['info', uri], ExitCode.OK, 'info answered');

  story.heading(`copy a generated ${DEMO_FILE_MIB} MiB file up to the agent`);
  const original = path.join(workDir, 'original.bin');
  await generateFile(original, DEMO_FILE_MIB);
  const originalSha = await sha256File(original);
  story.say(`generated ${original}\nsha256 ${originalSha}`);
  const up = await story.timedCli(['cp', original, `${uri}:/demo/big.bin`], ExitCode.OK, 'upload verified by SHA-256 on both ends');
  story.say(`upload: ${rate(DEMO_FILE_MIB * 1024 * 1024, up.ms)}`);
  if (options.remoteSha256) {
    const remoteSha = (await options.remoteSha256('/demo/big.bin')) ?? 'unreadable';
    story.say(`agent's side sha256 ${remoteSha}`);
    story.check(remoteSha === originalSha, 'the file on the agent\'s side hashes the same (checked there, not by the agent)');
  }

  story.heading('list the agent root');
  await story.cli(['ls', uri, '/demo'], ExitCode.OK, 'listing');

  story.heading('copy it back down');
  const roundTripped = path.join(workDir, 'round-tripped.bin');
  const down = await story.timedCli(['cp', `${uri}:/demo/big.bin`, roundTripped], ExitCode.OK, 'download verified by SHA-256');
  story.say(`download: ${rate(DEMO_FILE_MIB * 1024 * 1024, down.ms)}`);
  const backSha = await sha256File(roundTripped).catch(() => 'missing');
  story.say(`original      sha256 ${originalSha}\nround-tripped sha256 ${backSha}`);
  story.check(backSha === originalSha, 'the round-tripped file is byte-identical to the original');
  await rm(roundTripped, { force: true });

  story.heading('exec an allowed command');
  await story.cli(['exec', uri, '-n', '--', 'uname', '-a'], 0, 'uname ran on the agent');
  await story.cli(['exec', uri, '-n', '--', 'echo', 'hello from the agent'], 0, 'echo ran on the agent');

  story.heading('exec a command the policy refuses');
  await story.cli(['exec', uri, '-n', '--', 'cat', '/etc/shadow'], ExitCode.POLICY, 'refused by --allow-exec');

  story.heading('a path that escapes the agent root');
  await story.cli(['ls', uri, '/../..'], ExitCode.POLICY, 'refused by --root');
  return { uploadMs: up.code === ExitCode.OK ? up.ms : undefined, downloadMs: down.code === ExitCode.OK ? down.ms : undefined };
}
