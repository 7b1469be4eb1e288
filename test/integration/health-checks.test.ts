import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import { parseRoutes } from '../../src/config/load.js';
import { routesYaml, startProxy, type LogLine, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** An upstream whose health path answers `state.status` (or never, when `hang`); other paths 200 (POSTs 500 with `failPosts`). */
async function patient(name: string, status = 200): Promise<Upstream & { state: { status: number; hang: boolean; failPosts: boolean } }> {
  const state = { status, hang: false, failPosts: false };
  const upstream = await startUpstream(name, (req: IncomingMessage, res: ServerResponse) => {
    if (state.failPosts && req.method === 'POST') {
      req.resume();
      res.writeHead(500).end();
      return;
    }
    if (req.url?.endsWith('/healthz')) {
      if (!state.hang) res.writeHead(state.status).end();
      return;
    }
    res.end(name);
  });
  return Object.assign(upstream, { state });
}

/** Polls the in-memory log for a line: health checks run on their own timer, with no event to await. */
async function logged(proxy: TestProxy, match: (line: LogLine) => boolean, after = 0): Promise<LogLine> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const line = proxy.logs.slice(after).find(match);
    if (line) return line;
    if (Date.now() > deadline) throw new Error('log line never came');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function served(proxy: TestProxy, n: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(`${proxy.app.proxyUrl}/x`);
    expect(res.statusCode).toBe(200);
    bodies.push(await res.body.text());
  }
  return bodies;
}

const config = (urls: string[], health = '{ path: /healthz, interval: 50ms, timeout: 200ms }') =>
  routesYaml(`services:\n  app: { urls: [${urls.join(', ')}], health: ${health} }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`);

test('an endpoint failing its health check leaves the rotation, shows down, and returns when it passes again', async () => {
  const sick = await patient('sick', 503);
  const well = await patient('well');
  // A timeout loose enough that a loaded machine's slow check is not the problem reported.
  const proxy = await startProxy(config([sick.url, well.url], '{ path: /healthz, interval: 250ms, timeout: 250ms }'));

  const down = await logged(proxy, (l) => l.event === 'endpoint.unhealthy');
  expect(down).toMatchObject({ service: 'app', endpoint: sick.url, problem: 'status 503' });
  expect(new Set(await served(proxy, 6))).toEqual(new Set(['well']));
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain(`ficus_endpoint_up{service="app",endpoint="${sick.url}"} 0`);
  expect(metrics).toContain(`ficus_endpoint_up{service="app",endpoint="${well.url}"} 1`);
  const status = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { services: { name: string; endpoints: { url: string; up: boolean; healthCheck?: string }[] }[] };
  const endpoints = status.services.find((s) => s.name === 'app')?.endpoints ?? [];
  expect(endpoints.find((e) => e.url === sick.url)).toMatchObject({ up: false, healthCheck: 'failing' });

  sick.state.status = 200;
  const at = proxy.logs.length;
  expect(await logged(proxy, (l) => l.event === 'endpoint.healthy', at)).toMatchObject({ endpoint: sick.url });
  expect(new Set(await served(proxy, 6))).toEqual(new Set(['sick', 'well']));
});

test.each([
  { name: 'a status other than `expect`', health: '{ path: /healthz, interval: 50ms, expect: 204 }', setup: () => undefined, problem: 'status 200' },
  { name: 'no answer within `timeout`', health: '{ path: /healthz, interval: 150ms, timeout: 100ms }', setup: (u: { state: { hang: boolean } }) => void (u.state.hang = true), problem: 'no answer within 100 ms' },
])('$name fails the check', async ({ health, setup, problem }) => {
  const sick = await patient('sick');
  setup(sick);
  const well = await patient('well', 204);
  const proxy = await startProxy(config([sick.url, well.url], health));
  const down = await logged(proxy, (l) => l.event === 'endpoint.unhealthy');
  expect(down).toMatchObject({ endpoint: sick.url, problem });
  expect(new Set(await served(proxy, 4))).toEqual(new Set(['well']));
});

test('when every endpoint fails its check, all of them are used: a wrong health path never takes the service down', async () => {
  const a = await patient('a', 404);
  const b = await patient('b', 404);
  const proxy = await startProxy(config([a.url, b.url]));
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy' && l.endpoint === a.url);
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy' && l.endpoint === b.url);
  expect(new Set(await served(proxy, 4))).toEqual(new Set(['a', 'b']));
});

test("the check is sent under the service URL's path", async () => {
  const upstream = await patient('shop');
  const proxy = await startProxy(config([`${upstream.url}/shop`]));
  await expect.poll(() => upstream.seen.some((s) => s.url === '/shop/healthz'), { timeout: 5_000, interval: 10 }).toBe(true);
  const check = upstream.seen.find((s) => s.url === '/shop/healthz');
  expect(check?.headers['user-agent']).toBe('ficus-health-check');
  void proxy;
});

test('a health path may carry a query, sent as written', async () => {
  const upstream = await patient('shop');
  const proxy = await startProxy(config([`${upstream.url}/shop`], '{ path: "/healthz?deep=1&from=ficus", interval: 50ms, timeout: 200ms }'));
  await expect.poll(() => upstream.seen.some((s) => s.url === '/shop/healthz?deep=1&from=ficus'), { timeout: 5_000, interval: 10 }).toBe(true);
  void proxy;
});

test('a reload that leaves the service unchanged keeps its verdict; one that changes it starts afresh', async () => {
  const sick = await patient('sick', 503);
  const well = await patient('well');
  const proxy = await startProxy(config([sick.url, well.url]));
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy');

  await proxy.write(`${config([sick.url, well.url])}  - { name: other, match: { path: /other }, to: app }\n`);
  expect((await proxy.app.reload('admin')).result).toBe('success');
  // The first request after the reload already avoids the sick endpoint: nothing was reset.
  expect(new Set(await served(proxy, 4))).toEqual(new Set(['well']));

  const at = proxy.logs.length;
  await proxy.write(config([sick.url, well.url], '{ path: /healthz, interval: 60ms }'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  // A new definition starts healthy, and is taken out again by its own checks.
  expect(await logged(proxy, (l) => l.event === 'endpoint.unhealthy', at)).toMatchObject({ endpoint: sick.url });
});

test.each([
  ['interval: 0s', 'services.app.health.interval: must be longer than 0'],
  ['timeout: 0s', 'services.app.health.timeout: must be longer than 0'],
  ['expect: 99', 'services.app.health.expect'],
])('health { %s } is refused', (setting, message) => {
  const loaded = parseRoutes(config(['http://127.0.0.1:1'], `{ path: /healthz, ${setting} }`), 'routes.yaml');
  expect(loaded.ok).toBe(false);
  if (!loaded.ok) expect(loaded.issues.map((i) => `${i.path}: ${i.message}`).join('\n')).toContain(message);
});

test('an endpoint whose outlier ejection ends while its health check fails stays down in ficus_endpoint_up', async () => {
  let now = 1_700_000_000_000;
  const sick = await patient('sick');
  const well = await patient('well');
  // The sick endpoint fails POSTs, so one failure ejects it (consecutiveFailures: 1).
  sick.state.failPosts = true;
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${sick.url}, ${well.url}], outlier: { consecutiveFailures: 1 }, health: { path: /healthz, interval: 50ms } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
    { clock: { now: () => now } },
  );
  for (let i = 0; i < 2; i++) await (await request(`${proxy.app.proxyUrl}/x`, { method: 'POST', body: 'x' })).body.dump();
  await logged(proxy, (l) => l.event === 'endpoint.ejected');

  sick.state.status = 503;
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy');
  now += 10 * 60_000;
  // The next pick ends the ejection; the health check still keeps the endpoint out.
  await served(proxy, 2);
  await logged(proxy, (l) => l.event === 'endpoint.returned');
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain(`ficus_endpoint_up{service="app",endpoint="${sick.url}"} 0`);
});

test('when the only healthy endpoint is ejected, the one failing its health check serves rather than none (panic routing)', async () => {
  const sick = await patient('sick', 503);
  const well = await patient('well');
  well.state.failPosts = true;
  const proxy = await startProxy(config([sick.url, well.url]));
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy' && l.endpoint === sick.url);
  for (let i = 0; i < 5; i++) {
    const res = await request(`${proxy.app.proxyUrl}/x`, { method: 'POST', body: 'x' });
    expect(res.statusCode).toBe(500);
    await res.body.dump();
  }
  await logged(proxy, (l) => l.event === 'endpoint.ejected' && l.endpoint === well.url);
  expect(await served(proxy, 2)).toEqual(['sick', 'sick']);
  // ficus_endpoint_up shows both endpoints 0 all the while: the log says they serve anyway.
  expect(proxy.logs.find((l) => l.event === 'service.panic')).toMatchObject({ level: 40, service: 'app' });
});

test('a service whose every endpoint fails its health check says it is in panic routing, and when it leaves it', async () => {
  const a = await patient('a', 503);
  const b = await patient('b', 503);
  const proxy = await startProxy(config([a.url, b.url]));
  const panic = await logged(proxy, (l) => l.event === 'service.panic');
  expect(panic).toMatchObject({ level: 40, service: 'app' });
  expect(panic.msg).toContain('serve anyway (panic routing)');
  expect(new Set(await served(proxy, 4))).toEqual(new Set(['a', 'b']));

  b.state.status = 200;
  const ended = await logged(proxy, (l) => l.event === 'service.panic_ended');
  expect(ended).toMatchObject({ level: 30, service: 'app' });
  // Told once each way, however many checks ran meanwhile.
  expect(proxy.logs.filter((l) => l.event === 'service.panic')).toHaveLength(1);
  expect(new Set(await served(proxy, 4))).toEqual(new Set(['b']));
});

test('blue/green: each colour is checked, and a cutover keeps both colours\' verdicts and checks running', async () => {
  const blue = await patient('blue');
  const greenSick = await patient('green-sick', 503);
  const greenWell = await patient('green-well');
  const pair = (active: string) =>
    routesYaml(
      `services:\n  app:\n    blue: { url: ${blue.url} }\n    green: { urls: [${greenSick.url}, ${greenWell.url}] }\n    active: ${active}\n    health: { path: /healthz, interval: 50ms, timeout: 200ms }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`,
    );
  const proxy = await startProxy(pair('blue'));
  // The inactive colour is checked too, so it is known before anyone is sent to it.
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy' && l.endpoint === greenSick.url);

  await proxy.write(pair('green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  // The first request after the cutover already avoids green's sick endpoint: its verdict carried over.
  expect(new Set(await served(proxy, 4))).toEqual(new Set(['green-well']));

  // The colour now inactive is still checked.
  blue.state.status = 503;
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy' && l.endpoint === blue.url);
  expect(proxy.logs.filter((l) => l.event === 'endpoint.unhealthy' && l.endpoint === greenSick.url)).toHaveLength(1);
  expect(proxy.logs.some((l) => l.event === 'endpoint.healthy')).toBe(false);
});

test.each([
  { when: 'at start', reload: false },
  { when: "after a reload that changed its service's definition", reload: true },
])('an endpoint whose very first check fails leaves at once ($when), not an interval later', async ({ reload }) => {
  const sick = await patient('sick', 503);
  const well = await patient('well');
  const other = await patient('other');
  // Checks ten seconds apart: a second failure would come far too late for `logged`.
  const slow = '{ path: /healthz, interval: 10s, timeout: 2s }';
  const proxy = await startProxy(config([sick.url, well.url], slow));
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy' && l.endpoint === sick.url);
  if (reload) {
    const at = proxy.logs.length;
    await proxy.write(config([sick.url, well.url, other.url], slow));
    expect((await proxy.app.reload('admin')).result).toBe('success');
    expect(await logged(proxy, (l) => l.event === 'endpoint.unhealthy', at)).toMatchObject({ endpoint: sick.url, msg: 'endpoint out of service: its health check failed its first time (status 503)' });
  }
  expect(await served(proxy, 6)).not.toContain('sick');
});

test('a check whose answer starts but never completes within its timeout fails', async () => {
  const wedged = await startUpstream('wedged', (req, res) => {
    if (req.url !== '/healthz') return void res.end('wedged');
    // The head at once, then 2 of the 10 bytes it announced, then nothing.
    res.writeHead(200, { 'content-length': '10' });
    res.write('ab');
  });
  const well = await patient('well');
  const proxy = await startProxy(config([wedged.url, well.url], '{ path: /healthz, interval: 200ms, timeout: 200ms }'));
  expect(await logged(proxy, (l) => l.event === 'endpoint.unhealthy' && l.endpoint === wedged.url)).toMatchObject({ problem: 'no answer within 200 ms' });
});

test('ficus_endpoint_up names each endpoint by its URL, as /status does: two colours on one origin are two series', async () => {
  const host = await startUpstream('host', (req, res) => {
    if (req.url === '/v1/healthz') return void res.writeHead(500).end();
    res.end(req.url);
  });
  const proxy = await startProxy(
    routesYaml(`services:
  orders:
    blue: { url: ${host.url}/v1 }
    green: { url: ${host.url}/v2 }
    active: blue
    health: { path: /healthz, interval: 50ms, timeout: 200ms }
routes:
  - { name: rest, match: { path: / }, to: orders }
`),
  );
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy');
  const metrics = (await (await request(`${proxy.app.adminUrl}/metrics`)).body.text()).split('\n').filter((l) => l.startsWith('ficus_endpoint_up{'));
  expect(metrics.sort()).toEqual([`ficus_endpoint_up{service="orders",endpoint="${host.url}/v1"} 0`, `ficus_endpoint_up{service="orders",endpoint="${host.url}/v2"} 1`]);
});

test('a URL listed twice in urls is one ficus_endpoint_up series, up only while both listings are', async () => {
  const twice = await patient('twice', 503);
  const once = await patient('once');
  const proxy = await startProxy(config([twice.url, twice.url, once.url]));
  await logged(proxy, (l) => l.event === 'endpoint.unhealthy');
  const metrics = (await (await request(`${proxy.app.adminUrl}/metrics`)).body.text()).split('\n').filter((l) => l.startsWith('ficus_endpoint_up{'));
  expect(metrics.sort()).toEqual([`ficus_endpoint_up{service="app",endpoint="${once.url}"} 1`, `ficus_endpoint_up{service="app",endpoint="${twice.url}"} 0`].sort());
});

test('checks are paced: at most 64 in flight at once over every service, each timed from when it is sent, none failed for the wait', async () => {
  let inFlight = 0;
  let most = 0;
  let answered = 0;
  const upstream = await startUpstream('many', (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.endsWith('/healthz')) return void res.end('ok');
    inFlight++;
    most = Math.max(most, inFlight);
    setTimeout(() => {
      inFlight--;
      answered++;
      res.end();
    }, 150);
  });
  const urls = Array.from({ length: 80 }, (_, i) => `${upstream.url}/e${i}`);
  // 150 ms answers, a 200 ms timeout: the 16 that wait for a place would fail had their deadline started with the round.
  const proxy = await startProxy(config(urls, '{ path: /healthz, interval: 10s, timeout: 200ms }'));
  await vi.waitFor(() => expect(answered).toBeGreaterThanOrEqual(80), { timeout: 5_000, interval: 20 });
  expect(most).toBeLessThanOrEqual(64);
  expect(proxy.logs.filter((l) => l.event === 'endpoint.unhealthy')).toEqual([]);
});

test("checks wait their turn by service: one service's endpoints that never answer do not hold another's checks behind all of theirs", async () => {
  const arrivals: string[] = [];
  const upstream = await startUpstream('mixed', (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.endsWith('/healthz')) return void res.end('ok');
    arrivals.push(req.url.startsWith('/dead') ? 'dead' : 'live');
    // The dead service's endpoints hold their place until the check's timeout.
    if (req.url.startsWith('/live')) res.end();
  });
  const dead = Array.from({ length: 200 }, (_, i) => `${upstream.url}/dead${i}`);
  const yaml =
    `services:\n` +
    `  dead: { urls: [${dead.join(', ')}], health: { path: /healthz, interval: 60s, timeout: 1s } }\n` +
    `  live: { urls: ["${upstream.url}/live"], health: { path: /healthz, interval: 60s, timeout: 1s } }\n` +
    `routes:\n  - { name: d, match: { path: /d }, to: dead }\n  - { name: l, match: { path: / }, to: live }\n`;
  await startProxy(routesYaml(yaml));
  await vi.waitFor(() => expect(arrivals).toContain('live'), { timeout: 5_000, interval: 20 });
  // 64 places, all taken by the dead service first: the live service's check is the next one
  // sent once a place or two free, not the 201st.
  expect(arrivals.indexOf('live')).toBeLessThanOrEqual(66);
});
