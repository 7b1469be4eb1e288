import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

async function metricsProxy() {
  const legacy = await startUpstream('legacy');
  const hung = await startUpstream('hung', () => undefined);
  const down = await refusedPort();
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  down: { url: http://127.0.0.1:${down} }
  hung: { url: ${hung.url} }
routes:
  - name: paused
    match: { path: /paused }
    respond: { status: 503 }
  - name: gone
    match: { path: /down }
    to: down
  - name: stuck
    match: { path: /hung }
    to: hung
  - name: api
    match: { path: /api }
    to: legacy
`),
  );
  return { proxy, hung };
}

const scrape = async (app: RunningApp) => (await request(`${app.adminUrl}/metrics`)).body.text();

test('every request is counted by route, service, side and code, and timed', async () => {
  const { proxy } = await metricsProxy();
  for (const path of ['/api/a', '/api/b', '/paused', '/nowhere', '/down']) await (await request(`${proxy.app.proxyUrl}${path}`)).body.text();
  const text = await scrape(proxy.app);
  expect(text).toContain('ficus_requests_total{route="api",service="legacy",color="",side="stable",code="200"} 2');
  expect(text).toContain('ficus_requests_total{route="paused",service="",color="",side="",code="503"} 1');
  expect(text).toContain('ficus_requests_total{route="",service="",color="",side="",code="404"} 1');
  expect(text).toContain('ficus_requests_total{route="gone",service="down",color="",side="stable",code="502"} 1');
  expect(text).toMatch(/^ficus_upstream_errors_total\{service="down",kind="connect"\} [1-9]\d*$/m);
  expect(text).toContain('ficus_request_duration_seconds_count{route="api",service="legacy",color="",side="stable"} 2');
  expect(text).toMatch(/^ficus_request_duration_seconds_bucket\{le="\+Inf",route="api",service="legacy",color="",side="stable"\} 2$/m);
});

test('a request that never got a response is counted with code "000"', async () => {
  const { proxy, hung } = await metricsProxy();
  const controller = new AbortController();
  const pending = request(`${proxy.app.proxyUrl}/hung`, { signal: controller.signal }).catch(() => 'aborted');
  await vi.waitFor(() => expect(hung.seen).toHaveLength(1), { timeout: 2_000, interval: 5 });
  controller.abort();
  expect(await pending).toBe('aborted');
  await vi.waitFor(async () => expect(await scrape(proxy.app)).toContain('ficus_requests_total{route="stuck",service="hung",color="",side="stable",code="000"} 1'), {
    timeout: 2_000,
    interval: 10,
  });
});

test('each running proxy has its own registry', async () => {
  const [one, two] = [await metricsProxy(), await metricsProxy()];
  await (await request(`${one.proxy.app.proxyUrl}/api/x`)).body.text();
  expect(await scrape(one.proxy.app)).toContain('code="200"} 1');
  expect(await scrape(two.proxy.app)).not.toContain('ficus_requests_total{');
});

test('metrics are defined in src/observe/metrics.ts and nowhere else', async () => {
  const src = fileURLToPath(new URL('../../src/', import.meta.url));
  const files = (await readdir(src, { recursive: true })).filter((name) => name.endsWith('.ts'));
  const defining: string[] = [];
  for (const name of files) {
    const text = await readFile(join(src, name), 'utf8');
    if (/from ['"]prom-client['"]/.test(text) || /new (Counter|Gauge|Histogram|Summary)\b/.test(text)) defining.push(name.split('\\').join('/'));
  }
  expect(defining).toEqual(['observe/metrics.ts']);
});
