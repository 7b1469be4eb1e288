import { request } from 'undici';
import { expect, test } from 'vitest';
import { routeLedger } from '../../src/admin/ledger.js';
import type { RunningApp } from '../../src/app.js';
import { compile } from '../../src/config/compile.js';
import { RoutesFile } from '../../src/config/schema.js';
import { Metrics } from '../../src/observe/metrics.js';
import { LEGACY_SHARE_WINDOW_MS } from '../../src/observe/share-window.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/*
 * The migration ledger: how far the migration has gone, at a glance. ficus_legacy_share from
 * the requests really served, ficus_toggle_enabled from the running file, and /status saying
 * for every route whether it is legacy, new, a canary split or a shadow.
 */

async function ledgerProxy(invoices = true) {
  const legacy = await startUpstream('legacy');
  const monolith = await startUpstream('monolith');
  const fresh = await startUpstream('fresh');
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  const yaml = (enabled: boolean, active: 'blue' | 'green') =>
    routesYaml(`identity: { header: x-user-id }
services:
  legacy: { url: ${legacy.url} }
  monolith: { url: ${monolith.url}, legacy: true }
  fresh: { url: ${fresh.url} }
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: ${active}
    preview: { header: x-preview, token: "" }
toggles:
  invoices: { enabled: ${enabled} }
  new-checkout: { percent: 10, users: [alice] }
routes:
  - name: invoices-off
    match: { path: /invoices, toggle: "!invoices" }
    respond: { status: 503 }
  - name: old-shop
    match: { path: /shop }
    to: monolith
  - name: catalog
    match: { path: /catalog }
    to: fresh
  - name: search
    match: { path: /search }
    to: legacy
    canary: { to: fresh, weight: 25 }
  - name: orders
    match: { path: /orders }
    to: orders
  - name: rest
    match: { path: / }
    to: legacy
`);
  const proxy = await startProxy(yaml(invoices, 'blue'));
  return { proxy, yaml, blue, green };
}

const scrape = async (app: RunningApp) => (await request(`${app.adminUrl}/metrics`)).body.text();
const status = async (app: RunningApp) => (await request(`${app.adminUrl}/status`)).body.json() as Promise<Record<string, unknown>>;
const get = async (app: RunningApp, path: string) => (await request(`${app.proxyUrl}${path}`)).body.text();

test('ficus_legacy_share is the share of forwarded requests served by legacy services (by name or legacy: true)', async () => {
  const { proxy } = await ledgerProxy(false);
  // prom-client writes NaN as "Nan"; Prometheus parses either.
  expect(await scrape(proxy.app)).toMatch(/^ficus_legacy_share nan$/im);
  expect(await status(proxy.app)).toMatchObject({ migration: { legacyShare: null, requests: 0 } });

  // Served by legacy (by name), by monolith (legacy: true), by new services, and by ficus itself.
  for (const path of ['/', '/x', '/shop/1', '/catalog', '/orders', '/invoices', '/invoices/2']) await get(proxy.app, path);
  expect(await scrape(proxy.app)).toMatch(/^ficus_legacy_share 0\.6$/m);
  expect(await status(proxy.app)).toMatchObject({
    migration: { legacyShare: 0.6, requests: 5, legacyRequests: 3, windowSeconds: LEGACY_SHARE_WINDOW_MS / 1000, routes: { legacy: 2, new: 2, canary: 1, shadow: 0 } },
  });
});

test('the legacy share looks at a sliding window: old requests leave it, so the gauge follows a move within minutes', () => {
  let now = 1_000_000;
  const metrics = new Metrics({ now: () => now });
  const served = (legacy: boolean, n: number) => {
    for (let i = 0; i < n; i++) metrics.recordRequest('r', legacy ? 'legacy' : 'fresh', '', 'stable', 200, 0.001, legacy);
  };
  served(true, 9);
  served(false, 1);
  expect(metrics.forwarded.read()).toMatchObject({ share: 0.9, requests: 10 });
  metrics.recordRequest('paused', '', '', '', 503, 0.001);
  expect(metrics.forwarded.read().requests).toBe(10);

  now += LEGACY_SHARE_WINDOW_MS / 2;
  served(false, 10);
  expect(metrics.forwarded.read()).toMatchObject({ share: 9 / 20, requests: 20 });

  now += LEGACY_SHARE_WINDOW_MS / 2 + 1;
  expect(metrics.forwarded.read()).toMatchObject({ share: 0, requests: 10, legacy: 0 });

  now += LEGACY_SHARE_WINDOW_MS;
  expect(metrics.forwarded.read()).toMatchObject({ requests: 0 });
  expect(metrics.forwarded.read().share).toBeNaN();
});

test('ficus_toggle_enabled follows the running file: 1 or 0 per toggle, updated by a reload', async () => {
  const { proxy, yaml } = await ledgerProxy(true);
  let text = await scrape(proxy.app);
  expect(text).toContain('ficus_toggle_enabled{toggle="invoices"} 1');
  expect(text).toContain('ficus_toggle_enabled{toggle="new-checkout"} 1');

  await proxy.write(yaml(false, 'blue').replace(/ {2}new-checkout: .*\n/, ''));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  text = await scrape(proxy.app);
  expect(text).toContain('ficus_toggle_enabled{toggle="invoices"} 0');
  expect(text).not.toContain('toggle="new-checkout"');
});

test('/status shows each route as legacy, new, canary with its weight, each toggle, and each blue/green pair', async () => {
  const { proxy, blue, green, yaml } = await ledgerProxy(true);
  const doc = await status(proxy.app);
  expect(doc.routes).toEqual([
    expect.objectContaining({ name: 'invoices-off', respond: 503 }),
    expect.objectContaining({ name: 'old-shop', service: 'monolith', migration: 'legacy' }),
    expect.objectContaining({ name: 'catalog', service: 'fresh', migration: 'new' }),
    expect.objectContaining({ name: 'search', service: 'legacy', migration: 'canary', canary: 'fresh', weight: 25, state: 'running' }),
    expect.objectContaining({ name: 'orders', service: 'orders', migration: 'new' }),
    expect.objectContaining({ name: 'rest', service: 'legacy', migration: 'legacy' }),
  ]);
  expect(doc.toggles).toEqual([
    { name: 'invoices', enabled: true, audience: 'everyone' },
    { name: 'new-checkout', enabled: true, audience: 'some', percent: 10, users: 1 },
  ]);
  const orders = (doc.services as { name: string }[]).find((s) => s.name === 'orders');
  expect(orders).toMatchObject({
    active: 'blue',
    // One shape, guarded or not: the file's colour beside the one serving.
    configuredActive: 'blue',
    state: 'stable',
    preview: false,
    endpoints: [
      { url: blue.url, color: 'blue', up: true },
      { url: green.url, color: 'green', up: true },
    ],
  });

  await proxy.write(yaml(true, 'green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  const after = await status(proxy.app);
  expect((after.services as { name: string }[]).find((s) => s.name === 'orders')).toMatchObject({ active: 'green', state: 'stable' });
});

test('the status page shows the legacy share, canary weights, toggles and the active colour', async () => {
  const { proxy } = await ledgerProxy(false);
  await get(proxy.app, '/');
  const page = await (await request(`${proxy.app.adminUrl}/`)).body.text();
  for (const text of ['legacy share: 100.0 %', 'canary 25 % → fresh', '<h2>Toggles</h2>', '<td>invoices</td><td><b class="bad">off</b>', 'blue (active)']) expect(page).toContain(text);
});

test('a route with a shadow copy counts as shadow: the new service is tried, the legacy one still answers', () => {
  const source = RoutesFile.parse({
    version: 1,
    services: { legacy: { url: 'http://127.0.0.1:1' }, fresh: { url: 'http://127.0.0.1:2' } },
    routes: [{ name: 'invoices', match: { path: '/invoices' }, to: 'legacy', shadow: { to: 'fresh', percent: 10 } }],
  });
  const snapshot = compile(source, 'routes.yaml', 'h');
  expect(routeLedger(snapshot.routes[0] as (typeof snapshot.routes)[number], snapshot)).toEqual({ migration: 'shadow', shadow: 'fresh' });
});

test('a 413 ficus answers itself is not a request served by legacy, and is labelled as ficus\'s own answer', async () => {
  const legacy = await startUpstream('legacy');
  const fresh = await startUpstream('fresh');
  const proxy = await startProxy(routesYaml(`limits: { maxBodyBytes: 10 }
services:
  legacy: { url: ${legacy.url} }
  fresh: { url: ${fresh.url} }
routes:
  - { name: catalog, match: { path: /catalog }, to: fresh }
  - { name: rest, match: { path: / }, to: legacy }
`));
  for (let i = 0; i < 3; i++) {
    const res = await request(`${proxy.app.proxyUrl}/upload`, { method: 'POST', body: 'x'.repeat(100) });
    expect(res.statusCode).toBe(413);
    await res.body.dump();
  }
  await (await request(`${proxy.app.proxyUrl}/catalog`)).body.dump();
  expect(legacy.seen).toHaveLength(0);
  const text = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(text).toMatch(/^ficus_requests_total\{route="rest",service="",color="",side="",code="413"\} 3$/m);
  // Only one request was forwarded, to a new service: legacy served nothing.
  expect(text).toMatch(/^ficus_legacy_share 0$/m);
});
