import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { defaultDemoConfig } from '../../src/demo/demo.js';
import { tempDir } from '../helpers/proxy.js';
import { refusedPort } from '../helpers/upstream.js';

/*
 * `ficus demo` runs as a newcomer runs it: the real CLI in a child process. The repo's own
 * routes.yaml is copied with its ports swapped for free ones (`ficus demo -c FILE`), so the test
 * never collides with anything on the machine yet exercises the file that ships.
 */

const BIN = fileURLToPath(new URL('../../bin/ficus.js', import.meta.url));
const REPO_ROUTES = fileURLToPath(new URL('../../routes.yaml', import.meta.url));
const READY = /ficus demo is ready: proxy (\S+), admin (\S+)/;

interface Demo {
  output(): string;
  stderr(): string;
  waitFor(pattern: RegExp): Promise<RegExpMatchArray>;
  exit: Promise<number | null>;
  signal(name: NodeJS.Signals): void;
}

function startDemo(args: string[], cwd: string): Demo {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.FICUS_ADMIN_TOKEN;
  delete env.FICUS_CONFIG;
  const child = spawn(process.execPath, [BIN, 'demo', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    output: () => out,
    stderr: () => err,
    exit,
    signal: (name) => child.kill(name),
    waitFor(pattern) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = pattern.exec(out);
          if (!found) return false;
          child.stdout.off('data', check);
          resolve(found);
          return true;
        };
        if (check()) return;
        child.stdout.on('data', check);
        void exit.then(() => check() || reject(new Error(`demo exited before ${pattern}:\n${out}\n${err}`)));
      });
    },
  };
}

/** The shipped routes.yaml with every port replaced; each replaced text must exist exactly once. */
async function demoCopy(ports: { legacy: number; v2: number; listen?: number }): Promise<{ dir: string; file: string }> {
  const text = await readFile(REPO_ROUTES, 'utf8');
  const swaps: [string, string][] = [
    ['port: 8080', `port: ${ports.listen ?? 0}`],
    ['port: 9901', 'port: 0'],
    ['http://127.0.0.1:3001', `http://127.0.0.1:${ports.legacy}`],
    ['http://127.0.0.1:3101', `http://127.0.0.1:${ports.v2}`],
  ];
  let copy = text;
  for (const [from, to] of swaps) {
    expect(text.split(from).length - 1, `routes.yaml names "${from}" once`).toBe(1);
    copy = copy.replace(from, to);
  }
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, copy);
  return { dir, file };
}

async function get(url: string) {
  const res = await request(url);
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

test('the demo serves the monolith and the new service, moves a route live as the tour says, and exits 0 on Ctrl-C', async () => {
  const ports = { legacy: await refusedPort(), v2: await refusedPort() };
  const { dir, file } = await demoCopy(ports);
  const demo = startDemo(['-c', file], dir);
  const [, proxy = '', admin = ''] = await demo.waitFor(READY);

  const home = await get(`${proxy}/`);
  expect(home.status).toBe(200);
  expect(home.body).toContain('legacy monolith');
  expect(home.headers['x-served-by']).toBe('legacy');

  const preview = await get(`${proxy}/v2/catalog/42`);
  expect(preview.headers['x-served-by']).toBe('catalog-v2');
  expect(preview.body).toContain('GET /catalog/42');

  expect((await get(`${admin}/healthz`)).status).toBe(200);

  // Every curl the tour suggests does what the tour says it does.
  const trySection = /Try, in another terminal:\n([\s\S]*?)\n\n/.exec(demo.output())?.[1] ?? '';
  const examples = [...trySection.matchAll(/^ {2}curl (-i )?(http\S+) +(.+)$/gm)];
  expect(examples.length).toBe(trySection.split('\n').length);
  expect(examples.length).toBeGreaterThanOrEqual(4);
  for (const [, , url = '', says = ''] of examples) {
    const res = await get(url);
    const local = /ficus answers (\d{3}) itself/.exec(says);
    if (local) {
      expect(res.status, url).toBe(Number(local[1]));
      expect(res.headers['x-served-by'], url).toBeUndefined();
    } else {
      expect(res.headers['x-served-by'], `${url}: ${says}`).toBe(/^(\S+) answers/.exec(says)?.[1]);
    }
  }
  expect((await get(`${proxy}/invoices/export`)).headers['retry-after']).toBe('120');

  const catalogBefore = await get(`${proxy}/catalog`);
  expect(catalogBefore.headers['x-served-by']).toBe('legacy');
  await demo.waitFor(/GET \/catalog +→ legacy/);

  // Follow the tour's instruction literally: the named line, `to: legacy` → `to: catalog-v2`.
  const [, line = '0', from = '', to = ''] = await demo.waitFor(/line (\d+) \(route catalog\), change {3}to: (\S+) {3}into {3}to: (\S+)/);
  expect([from, to]).toEqual(['legacy', 'catalog-v2']);
  const lines = (await readFile(file, 'utf8')).split('\n');
  const target = Number(line) - 1;
  expect(lines[target]).toMatch(/to: legacy/);
  lines[target] = (lines[target] as string).replace('to: legacy', 'to: catalog-v2');
  await writeFile(`${file}.tmp`, lines.join('\n'));
  await rename(`${file}.tmp`, file);
  await demo.waitFor(/routes reloaded/);

  const catalogAfter = await get(`${proxy}/catalog`);
  expect(catalogAfter.headers['x-served-by']).toBe('catalog-v2');
  expect((await get(`${proxy}/`)).headers['x-served-by']).toBe('legacy');

  demo.signal('SIGINT');
  expect(await demo.exit).toBe(0);
  expect(demo.output()).toContain('stopped');
  // Everything the demo started is gone: its ports refuse connections again.
  for (const url of [proxy, admin, `http://127.0.0.1:${ports.legacy}`, `http://127.0.0.1:${ports.v2}`]) {
    await expect(request(url), url).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  }
});

test.each([
  { busy: 'legacy' as const, message: /port (\d+) is already in use, so the demo cannot start service "legacy"/ },
  { busy: 'listen' as const, message: /port (\d+) is already in use, so the proxy's listener cannot start/ },
])('a busy $busy port is reported clearly and the demo exits 1', async ({ busy, message }) => {
  const blocker = createServer();
  blocker.listen(0, busy === 'legacy' ? '127.0.0.1' : '0.0.0.0');
  await once(blocker, 'listening');
  onTestFinished(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as { port: number }).port;

  const ports = { legacy: busy === 'legacy' ? port : await refusedPort(), v2: await refusedPort(), listen: busy === 'listen' ? port : 0 };
  const { dir, file } = await demoCopy(ports);
  const demo = startDemo(['-c', file], dir);
  expect(await demo.exit).toBe(1);
  expect(demo.stderr()).toMatch(message);
  expect(message.exec(demo.stderr())?.[1]).toBe(String(port));
  expect(demo.output()).not.toMatch(READY);
});

test('without -c the demo uses the routes.yaml that ships with ficus, whatever the working directory', () => {
  expect(defaultDemoConfig()).toBe(REPO_ROUTES);
});
