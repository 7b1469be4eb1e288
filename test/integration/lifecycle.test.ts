import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { BIN, startFicus } from '../helpers/child.js';
import { routesYaml, tempDir } from '../helpers/proxy.js';
import { refusedPort } from '../helpers/upstream.js';

// Runs the built CLI and modules (`npm test` builds first; run `npm run build` before running this file alone).

const LOG = fileURLToPath(new URL('../../dist/observe/log.js', import.meta.url));

const LOCAL_ONLY = `services: {}\nroutes:\n  - { name: ping, match: { exact: /ping }, respond: { status: 200, body: pong } }\n`;

/** Resolves with the exit, or with 'still running' once `ms` have passed (the child is then left to onTestFinished). */
function exitWithin(child: ReturnType<typeof spawn>, ms: number): Promise<[number | null, NodeJS.Signals | null] | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), ms)));
  return Promise.race([once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>, late]).finally(() => clearTimeout(timer));
}

test('a log destination that fails (stdout on a full disk) costs log lines, never the proxy: it serves, and exits 0 on SIGTERM', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  const [port, adminPort] = [await refusedPort(), await refusedPort()];
  await writeFile(file, `version: 1\nlisten: { host: 127.0.0.1, port: ${port} }\nadmin: { host: 127.0.0.1, port: ${adminPort} }\n${LOCAL_ONLY}`);
  const full = openSync('/dev/full', 'w');
  onTestFinished(() => closeSync(full));
  const child = spawn(process.execPath, [BIN, 'start', '-c', file], { stdio: ['ignore', full, 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // No started line to read (it went to /dev/full): ask until the admin listener answers.
  for (let tries = 0; ; tries++) {
    const ready = await request(`http://127.0.0.1:${adminPort}/readyz`).then(
      (res) => res.body.dump().then(() => res.statusCode === 200),
      () => false,
    );
    if (ready) break;
    if (tries > 200 || child.exitCode !== null) throw new Error(`ficus did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  // Far more access lines than one batch: every batch written fails with ENOSPC.
  for (let i = 0; i < 600; i++) {
    const res = await request(`http://127.0.0.1:${port}/ping`);
    expect(await res.body.text()).toBe('pong');
  }
  expect((await request(`http://127.0.0.1:${adminPort}/healthz`)).statusCode).toBe(200);
  child.kill('SIGTERM');
  expect(await exitWithin(child, 10_000)).toEqual([0, null]);
});

test('at exit, a log reader that takes nothing more is given up on after a second: the process still exits', async () => {
  const script = `
    import { createLogger, MAX_PENDING_LOG_CHARS } from ${JSON.stringify(LOG)};
    const logger = createLogger('info');
    const filler = 'x'.repeat(200);
    for (let i = 0; i < Math.ceil(MAX_PENDING_LOG_CHARS / 260); i++) logger.info({ event: 'access', i, filler });
    setTimeout(() => { process.stderr.write('exiting\\n'); process.exit(0); }, 100);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  child.stdout.pause();
  const exited = exitWithin(child, 10_000);
  const result = await exited;
  child.stdout.resume();
  expect(result).toEqual([0, null]);
});

test('SIGUSR1 (nginx’s "reopen the logs") is answered with a line on stderr, never by opening Node’s inspector', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, routesYaml(LOCAL_ONLY));
  const ficus = await startFicus(file);
  let stderr = '';
  const told = new Promise<void>((resolve) =>
    ficus.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('SIGUSR1') || stderr.includes('Debugger listening')) resolve();
    }),
  );
  ficus.child.kill('SIGUSR1');
  await told;
  expect(stderr).not.toContain('Debugger listening');
  expect(await (await request(`${ficus.proxyUrl}/ping`)).body.text()).toBe('pong');
});

test.each([
  { level: '', outcome: 'starts, as for an unset variable' },
  { level: 'verbose', outcome: 'is refused with the levels there are' },
])('FICUS_LOG_LEVEL=$level: $outcome', async ({ level }) => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, routesYaml(LOCAL_ONLY));
  const child = spawn(process.execPath, [BIN, 'start', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FICUS_LOG_LEVEL: level } });
  onTestFinished(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  if (level === '') {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => stdout.includes('"event":"started"') && resolve());
      child.on('exit', () => reject(new Error(`exited: ${stderr}`)));
    });
    child.kill('SIGTERM');
    expect(await exitWithin(child, 10_000)).toEqual([0, null]);
  } else {
    expect(await exitWithin(child, 10_000)).toEqual([1, null]);
    expect(stderr).toBe('ficus: FICUS_LOG_LEVEL is "verbose"; it must be one of trace, debug, info, warn, error, fatal, silent\n');
  }
});

test('SIGTERM while ficus is still starting drains and exits 0 once it runs, rather than killing it', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, routesYaml(LOCAL_ONLY));
  // Loaded before ficus: the configuration is opened only once the test has sent its signal.
  const store = pathToFileURL(join(dirname(BIN), '..', 'dist', 'config', 'store.js')).href;
  const hold = `import { ConfigStore } from ${JSON.stringify(store)};
const open = ConfigStore.open;
ConfigStore.open = async function (...args) {
  // A signal listener keeps no process alive: the interval does, until the signal comes.
  const alive = setInterval(() => {}, 1000);
  await new Promise((resolve) => {
    process.once('SIGUSR2', resolve);
    process.stderr.write('opening\\n');
  });
  clearInterval(alive);
  return open.apply(this, args);
};`;
  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hold)}`, BIN, 'start', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  await new Promise<void>((resolve) => child.stderr.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('opening') && resolve()));
  child.kill('SIGTERM');
  child.kill('SIGUSR2');
  expect(await exitWithin(child, 10_000)).toEqual([0, null]);
  expect(stdout).toContain('"event":"stopped"');
});

test('a drained ficus whose log reader is slow but keeps reading gets every line out, whole and in order, before it exits', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  const [port, adminPort] = [await refusedPort(), await refusedPort()];
  await writeFile(file, `version: 1\nlisten: { host: 127.0.0.1, port: ${port} }\nadmin: { host: 127.0.0.1, port: ${adminPort} }\n${LOCAL_ONLY}`);
  const child = spawn(process.execPath, [BIN, 'start', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let text = '';
  let slow = false;
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
    if (!slow) return;
    // A pause of 400 ms after every chunk read: slower than ficus writes, never stopped.
    child.stdout.pause();
    setTimeout(() => child.stdout.resume(), 400);
  });
  const ended = once(child.stdout, 'end');
  while (!text.includes('"event":"started"')) await once(child.stdout, 'data');
  slow = true;
  for (let i = 0; i < 1500; i++) await (await request(`http://127.0.0.1:${port}/ping?i=${i}`)).body.dump();
  child.kill('SIGTERM');
  expect(await exitWithin(child, 15_000)).toEqual([0, null]);
  await ended;
  const lines = text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { event?: string });
  expect(lines.filter((line) => line.event === 'access')).toHaveLength(1500);
  expect(lines.at(-1)?.event).toBe('stopped');
});

test('a stdout that failed for a while (a full disk, then space again) still gets the last lines at exit', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  const out = join(dir, 'stdout.log');
  await writeFile(file, routesYaml(LOCAL_ONLY));
  const fd = openSync(out, 'w');
  onTestFinished(() => closeSync(fd));
  // A file-size limit gives EFBIG, as a full disk gives ENOSPC.
  const child = spawn('prlimit', ['--fsize=100000:unlimited', process.execPath, BIN, 'start', '-c', file], { stdio: ['ignore', fd, 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let started: { proxy: string } | undefined;
  while (started === undefined) {
    const line = readFileSync(out, 'utf8').split('\n').find((l) => l.includes('"event":"started"'));
    if (line !== undefined) started = JSON.parse(line) as { proxy: string };
    else await new Promise((resolve) => setTimeout(resolve, 25));
  }
  for (let i = 0; i < 1000; i++) await (await request(`${started.proxy}/ping`)).body.dump();
  // The log is written every half second at most: wait until it has met the limit.
  while (statSync(out).size < 90_000) await new Promise((resolve) => setTimeout(resolve, 25));
  execFileSync('prlimit', ['--pid', String(child.pid), '--fsize=unlimited:unlimited']);
  child.kill('SIGTERM');
  expect(await exitWithin(child, 10_000)).toEqual([0, null]);
  expect(readFileSync(out, 'utf8')).toContain('"event":"stopped"');
});

test('a second Ctrl-C stops ficus at once while it is still starting (its file a pipe nobody writes yet)', async () => {
  const dir = await tempDir();
  const fifo = join(dir, 'routes.yaml');
  execFileSync('mkfifo', [fifo]);
  const child = spawn(process.execPath, [BIN, 'start', '-c', fifo], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  // Opened for writing once ficus opened it for reading: its signal listeners are in place.
  const writer = await open(fifo, 'w');
  onTestFinished(() => writer.close());
  // Signals of one kind sent together may arrive as one: the second follows the first's answer.
  const told = new Promise<void>((resolve) => child.stderr.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('stopping once started') && resolve()));
  child.kill('SIGINT');
  await told;
  child.kill('SIGINT');
  expect(await exitWithin(child, 5_000)).toEqual([null, 'SIGINT']);
});

test('each reload’s worker thread ends once it has answered, even with a module preloaded into every thread that keeps it busy', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  const keepalive = join(dir, 'keepalive.cjs');
  await writeFile(keepalive, 'setInterval(() => {}, 60_000);\n');
  await writeFile(file, routesYaml(LOCAL_ONLY));
  const ficus = await startFicus(file, { NODE_OPTIONS: `--require ${keepalive}` });
  const threads = () => readdirSync(`/proc/${ficus.child.pid}/task`).length;
  const reloadWith = async (n: number) => {
    await writeFile(file, routesYaml(`${LOCAL_ONLY}  - { name: r${n}, match: { exact: /r${n} }, respond: { status: 204 } }\n`));
    const res = await request(`${ficus.adminUrl}/reload`, { method: 'POST' });
    // The watch may have loaded the change first.
    expect(['success', 'unchanged']).toContain(((await res.body.json()) as { result: string }).result);
  };
  await reloadWith(0);
  const before = threads();
  for (let n = 1; n <= 5; n++) await reloadWith(n);
  expect(threads()).toBeLessThanOrEqual(before + 1);
});
