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
import { BIN } from '../helpers/child.js';

/*
 * `ficus demo` runs as a newcomer runs it: the real CLI in a child process. The repo's own
 * routes.yaml is copied with its ports swapped for free ones (`ficus demo -c FILE`), so the test
 * never collides with anything on the machine yet exercises the file that ships.
 */

const REPO_ROUTES = fileURLToPath(new URL('../../routes.yaml', import.meta.url));
const READY = /ficus demo is ready: proxy (\S+), admin (\S+)/;

interface Demo {
  output(): string;
  stderr(): string;
  /** Resolves when `pattern` shows in the output written from offset `from` on. */
  waitFor(pattern: RegExp, from?: number): Promise<RegExpMatchArray>;
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
    waitFor(pattern, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = pattern.exec(out.slice(from));
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
interface Ports {
  legacy: number;
  v2: number;
  blue: number;
  green: number;
  search: number;
  invoices: number;
  listen?: number;
}

async function demoPorts(): Promise<Ports> {
  return { legacy: await refusedPort(), v2: await refusedPort(), blue: await refusedPort(), green: await refusedPort(), search: await refusedPort(), invoices: await refusedPort() };
}

async function demoCopy(ports: Ports): Promise<{ dir: string; file: string }> {
  const text = await readFile(REPO_ROUTES, 'utf8');
  const swaps: [string, string][] = [
    ['port: 8080', `port: ${ports.listen ?? 0}`],
    ['port: 9901', 'port: 0'],
    ['http://127.0.0.1:3001', `http://127.0.0.1:${ports.legacy}`],
    ['http://127.0.0.1:3101', `http://127.0.0.1:${ports.v2}`],
    ['http://127.0.0.1:3201', `http://127.0.0.1:${ports.blue}`],
    ['http://127.0.0.1:3202', `http://127.0.0.1:${ports.green}`],
    ['http://127.0.0.1:3301', `http://127.0.0.1:${ports.search}`],
    ['http://127.0.0.1:3401', `http://127.0.0.1:${ports.invoices}`],
  ];
  for (const [from] of swaps) expect(text.split(from).length - 1, `routes.yaml names "${from}" once`).toBe(1);
  // In one pass over the shipped text: a port put in (`…:34015`) must not be read again as one
  // to replace (`…:3401`).
  const table = new Map(swaps);
  const copy = text.replace(new RegExp([...table.keys()].map((from) => from.replace(/[.]/g, '\\.')).join('|'), 'g'), (from) => table.get(from) ?? from);
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, copy);
  return { dir, file };
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** `ficus answers 503 itself` or `orders-blue answers`: checks the response against what the tour says. */
function expectAnswer(res: Awaited<ReturnType<typeof get>>, says: string, label: string): void {
  const local = /ficus answers (\d{3}) itself/.exec(says);
  if (local) {
    expect(res.status, label).toBe(Number(local[1]));
    expect(res.headers['x-served-by'], label).toBeUndefined();
  } else {
    expect(res.headers['x-served-by'], `${label}: ${says}`).toBe(/^(\S+) answers/.exec(says)?.[1]);
  }
}

/** A command the tour prints as `npx ficus …`, run as the newcomer would, from the demo's directory. */
function ficus(args: string, cwd: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [BIN, ...args.split(/ +/)], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  return once(child, 'exit').then(([code]) => ({ code: code as number | null, out }));
}

test('the demo does what its tour says: the monolith, new services, a cohort, a preview, a kill switch, a cutover, a live move; Ctrl-C exits 0', async () => {
  const ports = await demoPorts();
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
  for (const [, , url = '', says = ''] of examples) expectAnswer(await get(url), says, url);
  expect((await get(`${proxy}/invoices/export`)).headers['retry-after']).toBe('120');

  // Who asks changes the answer: a cohort member, a preview token. Each curl does what it says.
  const audience = /Users, cohorts and colours.*:\n([\s\S]*?)\n\n/.exec(demo.output())?.[1] ?? '';
  const curls = [...audience.matchAll(/^ {2}curl ((?:-H '[^']+' )+)(http\S+) +(.+)$/gm)];
  expect(curls.map(([, , , says = '']) => /^(\S+) answers/.exec(says)?.[1])).toEqual(['catalog-v2', 'orders-green']);
  for (const [, flags = '', url = '', says = ''] of curls) {
    const headers = Object.fromEntries([...flags.matchAll(/-H '([^:]+): ([^']*)'/g)].map(([, k = '', v = '']) => [k, v]));
    expectAnswer(await get(url, headers), says, `${flags}${url}`);
    // Without the header, the same request is served as everyone else's.
    expect((await get(url)).headers['x-served-by'], url).not.toBe(/^(\S+) answers/.exec(says)?.[1]);
  }
  const explainLine = /^ {2}npx ficus (explain .+?) {3,}/m.exec(audience)?.[1] ?? '';
  const explained = await ficus(explainLine, dir);
  expect(explained.code, explained.out).toBe(0);
  expect(explained.out).toMatch(/^route: catalog-staff$/m);
  expect(explained.out).toMatch(/^cohorts: staff$/m);

  // Flip each switch with the command the tour prints; the watching proxy reloads the file.
  const flips = [...demo.output().matchAll(/^ {2}npx ficus ((?:toggle|cutover) .+?) +then +curl (-i )?(http\S+) +(.+)$/gm)];
  expect(flips.map(([, args = '']) => args.split(' ')[0])).toEqual(['toggle', 'cutover']);
  const before = await Promise.all(flips.map(([, , , url = '']) => get(url)));
  for (const [, args = '', , url = '', says = ''] of flips) {
    const from = demo.output().length;
    const edit = await ficus(args, dir);
    expect(edit.code, edit.out).toBe(0);
    await demo.waitFor(/routes reloaded/, from);
    expectAnswer(await get(url), says, `after ${args}: ${url}`);
  }
  expect(before.map((r) => r.headers['x-served-by'])).toEqual(['legacy', 'orders-blue']);
  // And back, as the tour says: each switch undone, the answers are the ones from before.
  const undo = /and back: (.+)$/m.exec(demo.output())?.[1]?.split(' · ') ?? [];
  expect(undo).toHaveLength(2);
  for (const command of undo) {
    const from = demo.output().length;
    const edit = await ficus(command.replace(/^npx ficus /, ''), dir);
    expect(edit.code, edit.out).toBe(0);
    await demo.waitFor(/routes reloaded/, from);
  }
  for (const [i, [, , , url = '']] of flips.entries()) expect((await get(url)).headers['x-served-by'], url).toBe(before[i]?.headers['x-served-by']);

  const logged = demo.output().length;
  const catalogBefore = await get(`${proxy}/catalog`);
  expect(catalogBefore.headers['x-served-by']).toBe('legacy');
  await demo.waitFor(/GET \/catalog +→ legacy/, logged);

  // Follow the tour's instruction literally: the named line, `to: legacy` → `to: catalog-v2`.
  const [, line = '0', from = '', to = ''] = await demo.waitFor(/line (\d+) \(route catalog\), change {3}to: (\S+) {3}into {3}to: (\S+)/);
  expect([from, to]).toEqual(['legacy', 'catalog-v2']);
  const lines = (await readFile(file, 'utf8')).split('\n');
  const target = Number(line) - 1;
  expect(lines[target]).toMatch(/to: legacy/);
  lines[target] = (lines[target] as string).replace('to: legacy', 'to: catalog-v2');
  const saved = demo.output().length;
  await writeFile(`${file}.tmp`, lines.join('\n'));
  await rename(`${file}.tmp`, file);
  await demo.waitFor(/routes reloaded/, saved);

  const catalogAfter = await get(`${proxy}/catalog`);
  expect(catalogAfter.headers['x-served-by']).toBe('catalog-v2');
  expect((await get(`${proxy}/`)).headers['x-served-by']).toBe('legacy');

  demo.signal('SIGINT');
  expect(await demo.exit).toBe(0);
  expect(demo.output()).toContain('stopped');
  // Everything the demo started is gone: its ports refuse connections again.
  for (const url of [proxy, admin, ...[ports.legacy, ports.v2, ports.blue, ports.green, ports.search, ports.invoices].map((port) => `http://127.0.0.1:${port}`)]) {
    await expect(request(url), url).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  }
});

test('the immune-system story of the tour: a user on the canary, the fault switch, the proxy ejecting it live, the status, the metrics, the readmission', async () => {
  const ports = await demoPorts();
  const { dir, file } = await demoCopy(ports);
  const demo = startDemo(['-c', file], dir);
  const [, , admin = ''] = await demo.waitFor(READY);

  const section = /The immune system: route search sends 50 % of users to the canary search-v2, and watches it on live traffic:\n([\s\S]*?)\n\n/.exec(demo.output())?.[1] ?? '';
  const steps = [...section.matchAll(/^ {2}\d\. (.+)\n {5}(.+)$/gm)].map(([, command = '', says = '']) => ({ command, says }));
  expect(steps).toHaveLength(6);
  const [look, breakIt, loop, status, metrics, mend] = steps;

  // 1. The user the tour names is on the canary.
  const [, header = '', user = '', url = ''] = /^curl -H '([^:]+): ([^']+)' (http\S+)$/.exec(look?.command ?? '') ?? [];
  const asUser = { [header]: user };
  expect(look?.says).toBe(`search-v2 answers: ${user} is among the 50 % of users on the canary`);
  expect((await get(url, asUser)).headers['x-served-by']).toBe('search-v2');

  // 2. The fault switch, on the canary service itself.
  const [, faultUrl = ''] = /^curl -X POST (http:\/\/127\.0\.0\.1:\d+\/fault)$/.exec(breakIt?.command ?? '') ?? [];
  expect(faultUrl).toBe(`http://127.0.0.1:${ports.search}/fault`);
  expect((await request(faultUrl, { method: 'POST' })).statusCode).toBe(200);

  // 3. The loop: each request answers what the tour says, and the console shows the ejection live.
  const [, times = '0'] = /^for i in \$\(seq (\d+)\); do curl -s -o \/dev\/null -w '%\{http_code\} ' -H '[^']+' http\S+; done; echo$/.exec(loop?.command ?? '') ?? [];
  const from = demo.output().length;
  const codes: number[] = [];
  for (let i = 0; i < Number(times); i++) codes.push((await get(url, asUser)).status);
  const [, failures = ''] = /^((?:500 ?)+), then 200: after \d+ failures in a row ficus ejected search-v2, and \S+ is back on legacy$/.exec(loop?.says ?? '') ?? [];
  const failed = failures.trim().split(' ').length;
  expect(failed).toBeGreaterThan(0);
  expect(codes).toEqual([...Array<number>(failed).fill(500), ...Array<number>(Number(times) - failed).fill(200)]);
  await demo.waitFor(/✗ canary search-v2 ejected from route search \(consecutive_failures\)/, from);
  expect((await get(url, asUser)).headers['x-served-by']).toBe('legacy');

  // 4. The CLI's status and 5. the metrics, as the tour prints them.
  const shown = await ficus(status?.command.replace(/^npx ficus /, '') ?? '', dir);
  expect(shown.code, shown.out).toBe(0);
  expect(shown.out).toMatch(/^ {2}search .*canary 0 % → search-v2, ejected/m);
  expect(metrics?.command).toBe(`curl -s ${admin}/metrics | grep -E 'ficus_(canary_weight|ejections_total)'`);
  const scraped = await (await request(`${admin}/metrics`)).body.text();
  expect(scraped).toContain('ficus_canary_weight{route="search"} 0');
  expect(scraped).toContain('ficus_ejections_total{route="search",reason="consecutive_failures"} 1');

  // 6. Mended and readmitted: the user is back on the canary.
  const [, mendUrl = '', readmitUrl = ''] = /^curl -X DELETE (\S+); curl -X POST (\S+)$/.exec(mend?.command ?? '') ?? [];
  expect(mendUrl).toBe(faultUrl);
  expect((await request(mendUrl, { method: 'DELETE' })).statusCode).toBe(200);
  expect((await request(readmitUrl, { method: 'POST' })).statusCode).toBe(200);
  expect((await get(url, asUser)).headers['x-served-by']).toBe('search-v2');
  await demo.waitFor(/↺ canary search-v2 readmitted to route search at 50 %/, from);

  demo.signal('SIGINT');
  expect(await demo.exit).toBe(0);
});

test('the shadow story of the tour: the monolith answers, its rewrite answers a copy, and ficus says where they differ', async () => {
  const ports = await demoPorts();
  const { dir, file } = await demoCopy(ports);
  const demo = startDemo(['-c', file], dir);
  const [, proxy = '', admin = ''] = await demo.waitFor(READY);

  const section = /In the shadows: route invoices-shadow is served by legacy, and invoices-v2 gets a copy of each request; ficus compares the answers:\n([\s\S]*?)\n\n/.exec(demo.output())?.[1] ?? '';
  const steps = [...section.matchAll(/^ {2}(curl .+?) {3,}(.+)$/gm)].map(([, command = '', says = '']) => ({ command, says }));
  expect(steps.map((s) => s.command)).toEqual([`curl ${proxy}/invoices/1001`, `curl ${proxy}/invoices/1002`, `curl -s ${admin}/metrics | grep ficus_shadow_comparisons_total`]);

  // The monolith answers both; the client never sees the rewrite.
  const from = demo.output().length;
  const same = await get(`${proxy}/invoices/1001`);
  expect(same.headers['x-served-by']).toBe('legacy');
  expect(JSON.parse(same.body)).toMatchObject({ id: 1001, status: 'paid' });
  await demo.waitFor(/GET \/invoices\/1001 +→ legacy +route invoices-shadow/, from);
  const different = await get(`${proxy}/invoices/1002`);
  expect(different.headers['x-served-by']).toBe('legacy');
  expect(JSON.parse(different.body)).toMatchObject({ id: 1002, status: 'open' });
  // The rewrite's answer really differs, where the tour says it does.
  expect(JSON.parse((await get(`http://127.0.0.1:${ports.invoices}/invoices/1002`)).body)).toMatchObject({ status: 'overdue' });

  await demo.waitFor(/≠ shadow invoices-v2 answered GET differently from route invoices-shadow: \$\.status changed$/m, from);
  // A match logs nothing, so its count is polled: the copy of 1001 may finish after that of 1002.
  const scrape = async () => (await request(`${admin}/metrics`)).body.text();
  await expect.poll(scrape).toContain('ficus_shadow_comparisons_total{route="invoices-shadow",result="match"} 1');
  expect(await scrape()).toContain('ficus_shadow_comparisons_total{route="invoices-shadow",result="mismatch"} 1');
  // Only the mismatch is logged: one line for two comparisons.
  expect(demo.output().slice(from).match(/≠ shadow/g)).toHaveLength(1);

  demo.signal('SIGINT');
  expect(await demo.exit).toBe(0);
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

  const ports = { ...(await demoPorts()), ...(busy === 'legacy' ? { legacy: port } : {}), listen: busy === 'listen' ? port : 0 };
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
