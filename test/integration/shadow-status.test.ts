import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import { BIN } from '../helpers/child.js';
import { metricSum } from '../helpers/metrics.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { shadowRoutesYaml, startShadowed } from '../helpers/shadow.js';
import { startUpstream } from '../helpers/upstream.js';

/** `/status` and `ficus status` say how a shadowed route's comparisons are going, without Prometheus. */

interface RouteStatus {
  name: string;
  migration?: string;
  shadow?: string;
  shadowPercent?: number;
  comparisons?: Record<string, number>;
  shadowDropped?: number;
}

test('a shadowed route shows its copies’ comparisons in /status and in ficus status', async () => {
  const legacy = await startUpstream('legacy', (req, res) => res.end(req.url === '/diff' ? 'old' : 'same'));
  const fresh = await startUpstream('fresh', (req, res) => res.end(req.url === '/diff' ? 'new' : 'same'));
  const proxy = await startProxy(shadowRoutesYaml(legacy.url, fresh.url));
  for (const path of ['/same', '/same', '/same', '/diff']) await (await request(`${proxy.app.proxyUrl}${path}`)).body.dump();

  const api = async (): Promise<RouteStatus | undefined> => {
    const status = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { routes: RouteStatus[] };
    return status.routes.find((r) => r.name === 'api');
  };
  // Each comparison settles once the copy's answer is in, after the client's.
  await vi.waitFor(async () => expect((await api())?.comparisons).toEqual({ match: 3, mismatch: 1, error: 0, skipped: 0 }), { timeout: 3_000, interval: 10 });
  expect(await api()).toMatchObject({ migration: 'shadow', shadow: 'fresh', shadowPercent: 100, shadowDropped: 0 });

  const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'status', '--admin', proxy.app.adminUrl]);
  expect(stdout).toMatch(/api +path under \/ +→ legacy \(shadow → fresh: 75\.0 % match of 4 compared\)/);
});

test('shadow copies serve no client, so they leave ficus_legacy_share alone', async () => {
  const { proxy } = await startShadowed('{ to: fresh }');
  for (let i = 0; i < 4; i++) await (await request(`${proxy.app.proxyUrl}/x${i}`)).body.dump();
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_requests_total', { side: 'shadow', code: '200' })).toBe(4), { timeout: 3_000, interval: 10 });
  // Four requests, all answered by legacy: a copy to `fresh` counted as forwarded would make it 0.5.
  expect(proxy.app.metrics.forwarded.read()).toMatchObject({ requests: 4, legacy: 4, share: 1 });
});

test('a route with both a canary and a shadow shows the shadow too: in /status, ficus status and the status page', async () => {
  const legacy = await startUpstream('legacy', (_req, res) => res.end('old'));
  const next = await startUpstream('next', (_req, res) => res.end('old'));
  const fresh = await startUpstream('fresh', (_req, res) => res.end('new'));
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  next: { url: ${next.url} }
  fresh: { url: ${fresh.url} }
routes:
  - name: api
    match: { path: / }
    to: legacy
    canary: { to: next, weight: 10 }
    shadow: { to: fresh, compare: true }
`),
  );
  for (let i = 0; i < 4; i++) await (await request(`${proxy.app.proxyUrl}/x${i}`)).body.dump();
  const api = async (): Promise<RouteStatus | undefined> => {
    const status = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { routes: RouteStatus[] };
    return status.routes.find((r) => r.name === 'api');
  };
  await vi.waitFor(async () => expect((await api())?.comparisons).toEqual({ match: 0, mismatch: 4, error: 0, skipped: 0 }), { timeout: 3_000, interval: 10 });
  expect(await api()).toMatchObject({ migration: 'canary', shadow: 'fresh' });
  const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'status', '--admin', proxy.app.adminUrl]);
  expect(stdout).toMatch(/api +path under \/ +→ legacy \(canary 10 % → next; shadow → fresh: 0\.0 % match of 4 compared\)/);
  const page = await (await request(`${proxy.app.adminUrl}/`)).body.text();
  expect(page).toContain('shadow → fresh: 0.0 % match of 4 compared');
});
