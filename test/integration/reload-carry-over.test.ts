import { request } from 'undici';
import { expect, test } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

interface Status {
  services: { name: string; endpoints: { url: string; up: boolean; timesEjected: number }[] }[];
}

function config(good: string, bad: string, { extraRoute = false, timeouts = '' } = {}): string {
  return routesYaml(`services:
  pool: { urls: [${good}, ${bad}], outlier: { consecutiveFailures: 1 }${timeouts} }
  other: { url: ${good} }
routes:
${extraRoute ? '  - name: extra\n    match: { path: /extra }\n    to: other\n' : ''}  - name: rest
    match: { path: / }
    to: pool
`);
}

async function endpointOf(app: RunningApp, url: string) {
  const status = (await (await request(`${app.adminUrl}/status`)).body.json()) as Status;
  return status.services.find((s) => s.name === 'pool')?.endpoints.find((e) => e.url === url);
}

async function reload(app: RunningApp, write: (text: string) => Promise<void>, text: string): Promise<void> {
  await write(text);
  expect(await (await request(`${app.adminUrl}/reload`, { method: 'POST' })).body.json()).toMatchObject({ result: 'success' });
}

const upstreamErrors = async (app: RunningApp) => /ficus_upstream_errors_total\{service="pool",kind="connect"\} (\d+)/.exec(await (await request(`${app.adminUrl}/metrics`)).body.text())?.[1];

test('an ejected endpoint stays ejected across a reload that leaves its service alone, and is reset when the service changes', async () => {
  const good = await startUpstream('good');
  const bad = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await startProxy(config(good.url, bad));
  const { app } = proxy;
  const runtime = app.store.current.services.get('pool');

  // Round-robin sends one of these to the refused endpoint: it is ejected, the request retried.
  for (let i = 0; i < 2; i++) expect((await request(`${app.proxyUrl}/x`)).statusCode).toBe(200);
  expect(await endpointOf(app, bad)).toMatchObject({ up: false, timesEjected: 1 });
  const errors = await upstreamErrors(app);
  expect(errors).toBe('1');

  await reload(app, proxy.write, config(good.url, bad, { extraRoute: true }));
  expect(app.store.current.services.get('pool')).toBe(runtime);
  expect(await endpointOf(app, bad)).toMatchObject({ up: false, timesEjected: 1 });
  const metrics = await (await request(`${app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain(`ficus_endpoint_up{service="pool",endpoint="${bad}"} 0`);
  for (let i = 0; i < 4; i++) expect((await request(`${app.proxyUrl}/x`)).statusCode).toBe(200);
  expect(await upstreamErrors(app)).toBe(errors);

  await reload(app, proxy.write, config(good.url, bad, { extraRoute: true, timeouts: ', timeouts: { response: 5s }' }));
  expect(app.store.current.services.get('pool')).not.toBe(runtime);
  expect(await endpointOf(app, bad)).toMatchObject({ up: true, timesEjected: 0 });
  expect(await (await request(`${app.adminUrl}/metrics`)).body.text()).toContain(`ficus_endpoint_up{service="pool",endpoint="${bad}"} 1`);
});
