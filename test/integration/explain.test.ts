import { request } from 'undici';
import { expect, test } from 'vitest';
import { runExplain } from '../../src/explain/command.js';
import type { ExplainReport } from '../../src/explain/explain.js';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/*
 * explain must say what the proxy does. Each request of a table goes three ways: through the
 * live proxy to upstreams that name themselves, to the admin's GET /explain, and to the offline
 * `ficus explain` on the same file. The upstream that answered must be one explain named, and
 * the three must agree on everything else.
 */

const NAMES = ['legacy', 'catalog-v2', 'search-v2', 'orders-blue', 'orders-green'] as const;
type Name = (typeof NAMES)[number];

function config(up: Record<Name, Upstream>, { active, invoices }: { active: 'blue' | 'green'; invoices: boolean }): string {
  return routesYaml(`identity: { header: x-user-id, cookie: uid }
services:
  legacy: { url: ${up.legacy.url} }
  catalog-v2: { url: ${up['catalog-v2'].url} }
  search-v2: { url: ${up['search-v2'].url} }
  orders:
    blue: { url: ${up['orders-blue'].url} }
    green: { url: ${up['orders-green'].url} }
    active: ${active}
    preview: { header: x-preview, token: open-sesame }
cohorts:
  staff: { users: [alice, bob] }
  beta: { header: { name: x-beta, value: "1" } }
toggles:
  invoices: { enabled: ${invoices} }
  new-reports: { percent: 40, cohorts: [staff] }
routes:
  - name: invoices-off
    match: { path: /invoices, toggle: "!invoices" }
    respond: { status: 503, body: paused }
  - name: catalog-staff
    match: { path: /catalog, cohort: staff }
    to: catalog-v2
  - name: catalog-beta
    match: { path: /catalog, cohort: beta }
    to: catalog-v2
  - name: reports-new
    match: { path: /reports, toggle: new-reports }
    to: catalog-v2
  - name: search
    match: { path: /search }
    to: legacy
    canary: { to: search-v2, weight: 50 }
  - name: orders
    match: { path: /orders }
    to: orders
  - name: rest
    match: { path: / }
    to: legacy
`);
}

async function upstreams(): Promise<Record<Name, Upstream>> {
  const entries = await Promise.all(NAMES.map(async (name) => [name, await startUpstream(name)] as const));
  return Object.fromEntries(entries) as Record<Name, Upstream>;
}

interface Case {
  url: string;
  user?: string;
  headers?: Record<string, string>;
}

const USERS = ['alice', 'bob', 'carol', 'dave', ...Array.from({ length: 12 }, (_, i) => `user-${i}`)];
const PATHS = ['/invoices/1', '/catalog/42', '/reports', '/search?q=fig', '/orders/7', '/'];
const CASES: Case[] = [
  ...USERS.flatMap((user) => PATHS.map((url) => ({ url, user }))),
  // Anonymous callers, where nothing depends on a random draw for the route taken.
  { url: '/catalog/1', headers: { 'x-beta': '1' } },
  { url: '/catalog/1' },
  { url: '/orders/1', headers: { 'x-preview': 'open-sesame' } },
  { url: '/orders/1', headers: { 'x-preview': 'wrong' } },
  { url: '/orders/1', user: 'carol', headers: { 'x-preview': 'open-sesame' } },
  { url: '/catalog/2', headers: { cookie: 'uid=bob' } },
];

interface Outcome {
  status: number;
  upstream: string | undefined;
  toggles: string | undefined;
}

async function viaProxy(proxy: TestProxy, c: Case): Promise<Outcome> {
  const headers = { ...c.headers, ...(c.user !== undefined ? { 'x-user-id': c.user } : {}) };
  const res = await request(`${proxy.app.proxyUrl}${c.url}`, { headers });
  const text = await res.body.text();
  const upstream = res.headers['x-upstream'] as string | undefined;
  const seen = upstream === undefined ? undefined : (JSON.parse(text) as { headers: Record<string, string> }).headers['x-ficus-toggles'];
  return { status: res.statusCode, upstream, toggles: seen };
}

async function viaAdmin(proxy: TestProxy, c: Case): Promise<ExplainReport> {
  const query = new URLSearchParams({ method: 'GET', url: c.url });
  if (c.user !== undefined) query.set('user', c.user);
  for (const [name, value] of Object.entries(c.headers ?? {})) query.append('header', `${name}: ${value}`);
  const res = await request(`${proxy.app.adminUrl}/explain?${query}`);
  expect(res.statusCode).toBe(200);
  return (await res.body.json()) as ExplainReport;
}

async function viaCli(file: string, c: Case): Promise<ExplainReport> {
  const argv = ['GET', c.url, '-c', file, '--json'];
  if (c.user !== undefined) argv.push('-u', c.user);
  for (const [name, value] of Object.entries(c.headers ?? {})) argv.push('-H', `${name}: ${value}`);
  let out = '';
  const code = await runExplain(argv, { stdout: (t) => void (out += t), stderr: (t) => void (out += t), env: {} });
  expect(code, out).toBe(0);
  return JSON.parse(out) as ExplainReport;
}

/** Checks one request three ways; returns what happened, for coverage checks. */
async function agree(proxy: TestProxy, up: Record<Name, Upstream>, c: Case): Promise<{ report: ExplainReport; outcome: Outcome }> {
  const label = JSON.stringify(c);
  const [outcome, live, offline] = await Promise.all([viaProxy(proxy, c), viaAdmin(proxy, c), viaCli(proxy.file, c)]);
  if (live.respond !== undefined) {
    expect(outcome.upstream, label).toBeUndefined();
    expect(outcome.status, label).toBe(live.respond);
  } else {
    expect(outcome.status, label).toBe(200);
    expect(live.endpoints, label).toContain(up[outcome.upstream as Name].url);
  }
  if (c.user !== undefined || c.headers?.cookie !== undefined) {
    // A known caller: every decision is deterministic, so all three agree on all of it.
    expect(offline, label).toEqual(live);
    if (live.respond === undefined) expect(outcome.toggles, label).toBe(live.toggles.join(',') || undefined);
  } else {
    for (const key of ['route', 'service', 'side', 'color', 'endpoints', 'respond'] as const) expect(offline[key], `${label} ${key}`).toEqual(live[key]);
  }
  return { report: live, outcome };
}

test.each([
  { active: 'blue' as const, invoices: true },
  { active: 'green' as const, invoices: false },
])('explain (live and offline) agrees with where the proxy sends each request: active $active, invoices $invoices', async (setup) => {
  const up = await upstreams();
  const proxy = await startProxy(config(up, setup));
  const results = [];
  for (const c of CASES) results.push(await agree(proxy, up, c));

  // The table really exercised every kind of decision, on both sides of each.
  const reached = new Set(results.map((r) => r.outcome.upstream ?? `respond ${r.outcome.status}`));
  const expected = ['legacy', 'catalog-v2', 'search-v2', 'orders-blue', 'orders-green', ...(setup.invoices ? [] : ['respond 503'])];
  expect([...reached].sort()).toEqual(expected.sort());
  const search = results.filter((r) => r.report.route === 'search');
  expect(new Set(search.map((r) => r.report.side))).toEqual(new Set(['stable', 'canary']));
  const reports = results.filter((r) => r.report.request === 'GET /reports');
  expect(new Set(reports.map((r) => r.report.route))).toEqual(new Set(['reports-new', 'rest']));
  const orders = results.filter((r) => r.report.route === 'orders');
  expect(orders.filter((r) => r.report.preview).map((r) => r.report.color)).toEqual([setup.active === 'blue' ? 'green' : 'blue', setup.active === 'blue' ? 'green' : 'blue']);
});

test('after a cutover is reloaded, GET /explain names the new colour and the proxy sends there', async () => {
  const up = await upstreams();
  const proxy = await startProxy(config(up, { active: 'blue', invoices: true }));
  const c = { url: '/orders/1', user: 'carol' };
  expect((await agree(proxy, up, c)).report.color).toBe('blue');
  await proxy.write(config(up, { active: 'green', invoices: true }));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  const { report, outcome } = await agree(proxy, up, c);
  expect(report.color).toBe('green');
  expect(outcome.upstream).toBe('orders-green');
});

test.each([
  { query: '', status: 400, error: /give the request to explain/ },
  { query: '?url=/x&method=G3T', status: 400, error: /not an HTTP method/ },
  { query: '?url=/x&header=nocolon', status: 400, error: /header takes "name: value"/ },
])('GET /explain$query answers $status', async ({ query, status, error }) => {
  const up = await upstreams();
  const proxy = await startProxy(config(up, { active: 'blue', invoices: true }));
  const res = await request(`${proxy.app.adminUrl}/explain${query}`);
  expect(res.statusCode).toBe(status);
  expect(((await res.body.json()) as { error: string }).error).toMatch(error);
});

test('GET /explain needs no token, even when POSTs do, and defaults the method to GET', async () => {
  const up = await upstreams();
  const proxy = await startProxy(config(up, { active: 'blue', invoices: true }).replace('admin: { host: 127.0.0.1, port: 0 }', 'admin: { host: 127.0.0.1, port: 0, token: t }'));
  const res = await request(`${proxy.app.adminUrl}/explain?url=${encodeURIComponent('/catalog/1')}&user=alice`);
  expect(res.statusCode).toBe(200);
  expect(await res.body.json()).toMatchObject({ request: 'GET /catalog/1', route: 'catalog-staff', service: 'catalog-v2', cohorts: ['staff'] });
});

test('GET /explain marks the endpoints the balancer passes over right now: down by health checks, ejected by outlier detection', async () => {
  const healthy = await startUpstream('healthy');
  const sick = await startUpstream('sick', (req, res) => {
    res.statusCode = req.url === '/healthz' ? 503 : 500;
    res.end('sick');
  });
  const proxy = await startProxy(
    routesYaml(`services:
  checked: { urls: [${healthy.url}, ${sick.url}], health: { path: /healthz, interval: 50ms } }
  watched: { urls: [${healthy.url}, ${sick.url}], outlier: { consecutiveFailures: 1 } }
routes:
  - { name: checked, match: { path: /checked }, to: checked }
  - { name: watched, match: { path: /watched }, to: watched }
`),
  );
  const explained = async (path: string) => (await (await request(`${proxy.app.adminUrl}/explain?url=${path}`)).body.json()) as ExplainReport;
  // Round-robin starts at the first URL: the second request meets the sick endpoint, and its 500 ejects it.
  for (let i = 0; i < 2; i++) await (await request(`${proxy.app.proxyUrl}/watched`)).body.dump();
  const start = Date.now();
  while (!(await explained('/checked')).endpoints?.some((e) => e.endsWith('(down)'))) {
    if (Date.now() - start > 3_000) throw new Error('the health check never failed');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const checked = await explained('/checked');
  expect(checked.endpoints).toEqual([healthy.url, `${sick.url} (down)`]);
  expect(checked.notes).toContain('endpoints: those marked ejected or down are passed over by the balancer right now');
  expect((await explained('/watched')).endpoints).toEqual([healthy.url, `${sick.url} (ejected)`]);
  // Offline, nothing is known of the endpoints' state.
  let out = '';
  expect(await runExplain(['GET', '/checked', '-c', proxy.file, '--json'], { stdout: (t) => void (out += t), stderr: (t) => void (out += t), env: {} })).toBe(0);
  expect((JSON.parse(out) as ExplainReport).endpoints).toEqual([healthy.url, sick.url]);
});
