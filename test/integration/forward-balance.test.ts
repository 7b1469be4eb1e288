import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

async function metricsText(adminUrl: string): Promise<string> {
  return (await request(`${adminUrl}/metrics`)).body.text();
}

test('round-robin spreads requests evenly over `urls`', async () => {
  const upstreams = await Promise.all(['a', 'b', 'c'].map((name) => startUpstream(name)));
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${upstreams.map((u) => u.url).join(', ')}] }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
  for (let i = 0; i < 30; i++) {
    const res = await request(`${proxy.app.proxyUrl}/rr`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  }
  expect(upstreams.map((u) => u.seen.length)).toEqual([10, 10, 10]);
});

test('least-request sends nothing to an endpoint with more requests in flight than the other', async () => {
  let release: (() => void) | undefined;
  let arrived: () => void = () => undefined;
  const parked = new Promise<void>((resolve) => (arrived = resolve));
  const busy = await startUpstream('busy', (_req, res) => {
    release = () => res.end('busy');
    arrived();
  });
  const idle = await startUpstream('idle');
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${busy.url}, ${idle.url}], balance: least-request }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
  // Requests go one at a time until one is held by "busy"; from then on "busy" has one in flight.
  let held: Promise<unknown> | undefined;
  for (let i = 0; i < 64 && !held; i++) {
    const pending = request(`${proxy.app.proxyUrl}/lr`);
    const outcome = await Promise.race([pending.then(async (res) => void (await res.body.dump())), parked.then(() => 'parked' as const)]);
    if (outcome === 'parked') held = pending;
  }
  expect(busy.seen).toHaveLength(1);
  for (let i = 0; i < 20; i++) await (await request(`${proxy.app.proxyUrl}/lr`)).body.dump();
  expect(busy.seen).toHaveLength(1);
  release?.();
  await held;
});

test('a dead endpoint is ejected after consecutiveFailures, traffic stops going to it, and ficus_endpoint_up shows 0', async () => {
  const live = await startUpstream('live');
  const deadUrl = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${deadUrl}, ${live.url}], outlier: { consecutiveFailures: 3 } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
  const before = await metricsText(proxy.app.adminUrl);
  expect(before).toContain(`ficus_endpoint_up{service="app",endpoint="${deadUrl}"} 1`);

  // POSTs are never retried, so every pick of the dead endpoint shows as a 502.
  const statuses: number[] = [];
  for (let i = 0; i < 16; i++) {
    const res = await request(`${proxy.app.proxyUrl}/o`, { method: 'POST', body: 'x' });
    statuses.push(res.statusCode);
    await res.body.dump();
  }
  expect(statuses.slice(0, 6)).toEqual([502, 200, 502, 200, 502, 200]);
  expect(statuses.slice(6)).toEqual(Array(10).fill(200));
  expect(live.seen).toHaveLength(13);

  const after = await metricsText(proxy.app.adminUrl);
  expect(after).toContain(`ficus_endpoint_up{service="app",endpoint="${deadUrl}"} 0`);
  expect(after).toContain(`ficus_endpoint_up{service="app",endpoint="${live.url}"} 1`);
  expect(after).toContain('ficus_upstream_errors_total{service="app",kind="connect"} 3');
});

test('the default threshold is 5 failures in a row', async () => {
  const live = await startUpstream('live');
  const deadUrl = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await startProxy(routesYaml(`services:\n  app: { urls: [${deadUrl}, ${live.url}] }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`));
  const statuses: number[] = [];
  for (let i = 0; i < 14; i++) {
    const res = await request(`${proxy.app.proxyUrl}/o`, { method: 'POST', body: 'x' });
    statuses.push(res.statusCode);
    await res.body.dump();
  }
  expect(statuses.filter((s) => s === 502)).toHaveLength(5);
  expect(statuses.slice(10)).toEqual([200, 200, 200, 200]);
});

test('a lone dead endpoint is never ejected: at most half of a service is', async () => {
  const deadUrl = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await startProxy(routesYaml(`services:\n  app: { url: ${deadUrl}, outlier: { consecutiveFailures: 1 } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`));
  for (let i = 0; i < 3; i++) {
    const res = await request(`${proxy.app.proxyUrl}/o`);
    expect(res.statusCode).toBe(502);
    await res.body.dump();
  }
  expect(await metricsText(proxy.app.adminUrl)).toContain(`ficus_endpoint_up{service="app",endpoint="${deadUrl}"} 1`);
});

test('once an ejection has run out, ficus_endpoint_up and /status both show the endpoint up, before any request picks it', async () => {
  let now = 1_700_000_000_000;
  const live = await startUpstream('live');
  const deadUrl = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${deadUrl}, ${live.url}], outlier: { consecutiveFailures: 1 } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
    { clock: { now: () => now } },
  );
  for (let i = 0; i < 2; i++) await (await request(`${proxy.app.proxyUrl}/o`, { method: 'POST', body: 'x' })).body.dump();
  const up = async () => {
    const status = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { services: { name: string; endpoints: { url: string; up: boolean }[] }[] };
    const fromStatus = status.services.find((s) => s.name === 'app')?.endpoints.find((e) => e.url.startsWith(deadUrl))?.up;
    const fromMetric = (await metricsText(proxy.app.adminUrl)).includes(`ficus_endpoint_up{service="app",endpoint="${deadUrl}"} 1`);
    return [fromStatus, fromMetric];
  };
  expect(await up()).toEqual([false, false]);
  now += 10 * 60_000;
  expect(await up()).toEqual([true, true]);
});
