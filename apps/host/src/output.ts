/** Where commands print: injectable so tests and the demo can capture it. */
export interface CliOutput {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

export const processOutput: CliOutput = { stdout: process.stdout, stderr: process.stderr };

/** Writes and waits for the stream to accept more (exec output must not pile up in memory). */
export function writeWithBackpressure(stream: NodeJS.WritableStream, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = stream.write(chunk, (err) => {
      if (err) reject(err);
    });
    if (ok) resolve();
    else stream.once('drain', () => resolve());
  });
}

export function printJson(out: CliOutput, value: unknown): void {
  out.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
