import { randomFill } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ExitCode } from './exit-codes.js';
import { type Story, sha256File } from './demo-kit.js';

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

/**
 * The story both demos tell against an agent at `uri` whose root is empty and whose
 * allow-list holds `uname` and `echo`: ping, info, a 64 MiB round trip verified by
 * SHA-256, an allowed exec, a refused exec and a refused path escape.
 */
export async function runAgentStory(story: Story, uri: string, workDir: string): Promise<void> {
  story.heading(`ping the agent at ${uri}`);
  await story.cli(['ping', uri, '--count', '3'], ExitCode.OK, 'three round trips');

  story.heading('info: what the agent knows about its machine');
  await story.cli(['info', uri], ExitCode.OK, 'info answered');

  story.heading(`copy a generated ${DEMO_FILE_MIB} MiB file up to the agent`);
  const original = path.join(workDir, 'original.bin');
  await generateFile(original, DEMO_FILE_MIB);
  const originalSha = await sha256File(original);
  story.say(`generated ${original}\nsha256 ${originalSha}`);
  await story.cli(['cp', original, `${uri}:/demo/big.bin`], ExitCode.OK, 'upload verified by SHA-256 on both ends');

  story.heading('list the agent root');
  await story.cli(['ls', uri, '/demo'], ExitCode.OK, 'listing');

  story.heading('copy it back down');
  const roundTripped = path.join(workDir, 'round-tripped.bin');
  await story.cli(['cp', `${uri}:/demo/big.bin`, roundTripped], ExitCode.OK, 'download verified by SHA-256');
  const backSha = await sha256File(roundTripped).catch(() => 'missing');
  story.say(`original      sha256 ${originalSha}\nround-tripped sha256 ${backSha}`);
  story.check(backSha === originalSha, 'the round-tripped file is byte-identical to the original');

  story.heading('exec an allowed command');
  await story.cli(['exec', uri, '--', 'uname', '-a'], 0, 'uname ran on the agent');
  await story.cli(['exec', uri, '--', 'echo', 'hello from the agent'], 0, 'echo ran on the agent');

  story.heading('exec a command the policy refuses');
  await story.cli(['exec', uri, '--', 'cat', '/etc/shadow'], ExitCode.POLICY, 'refused by --allow-exec');

  story.heading('a path that escapes the agent root');
  await story.cli(['ls', uri, '/../..'], ExitCode.POLICY, 'refused by --root');
}
