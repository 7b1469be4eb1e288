import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { onTestFinished } from 'vitest';
import { startApp, type AppOptions, type RunningApp } from '../../src/app.js';
import { LOG_BASE, withLineSink } from '../../src/observe/log.js';

export interface LogLine {
  level: number;
  event?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface TestProxy {
  app: RunningApp;
  dir: string;
  file: string;
  logs: LogLine[];
  /** Replaces the routes file atomically (temp file + rename), as an editor would. */
  write(yaml: string): Promise<void>;
}

/** A logger that keeps every JSON line in memory, synchronously, for assertions. */
export function memoryLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  // Built as ficus builds its own logger, so access lines take the same direct path here.
  const base = LOG_BASE;
  return { logger: withLineSink(pino({ level: 'debug', base }, sink), base, (line) => sink.write(line)), lines };
}

/** Minimal routes.yaml text: listeners on port 0 so tests never collide. */
export function routesYaml(body: string): string {
  return `version: 1\nlisten: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n${body}`;
}

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ficus-test-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Writes `yaml` to a fresh temp dir and starts the real proxy on it (edge + admin on port 0).
 * Drains it when the test finishes.
 */
export async function startProxy(yaml: string, options: Partial<AppOptions> = {}): Promise<TestProxy> {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, yaml);
  const { logger, lines } = memoryLogger();
  const app = await startApp({ configFile: file, logger, watch: false, ...options });
  onTestFinished(() => app.drain());
  let n = 0;
  return {
    app,
    dir,
    file,
    logs: lines,
    async write(text: string) {
      const temp = join(dir, `.routes.yaml.${n++}.tmp`);
      await writeFile(temp, text);
      await rename(temp, file);
    },
  };
}
