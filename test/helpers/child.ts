import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import type { LogLine } from './proxy.js';

export const BIN = fileURLToPath(new URL('../../bin/ficus.js', import.meta.url));

export interface FicusChild {
  child: ChildProcessByStdio<null, Readable, Readable>;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** Every JSON log line the child wrote so far. */
  lines: LogLine[];
  proxyUrl: string;
  adminUrl: string;
}

/**
 * Runs `ficus start -c FILE` as a real process (built dist, as a user runs it) and resolves at
 * its `started` log line; killed when the test finishes if it is still running.
 */
export async function startFicus(file: string, env?: NodeJS.ProcessEnv): Promise<FicusChild> {
  const child = spawn(process.execPath, [BIN, 'start', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'], env: env === undefined ? undefined : { ...process.env, ...env } });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: LogLine[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const started = new Promise<LogLine>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = JSON.parse(text) as LogLine;
      lines.push(line);
      if (line.event === 'started') resolve(line);
    });
    void exited.then(() => reject(new Error(`ficus exited before starting: ${stderr}`)));
  });
  const line = await started;
  return { child, exited, lines, proxyUrl: String(line.proxy), adminUrl: String(line.admin) };
}
