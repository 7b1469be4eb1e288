import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { startApp } from '../../src/app.js';
import { bucketOf } from '../../src/routing/bucket.js';
import { canaryYaml } from '../helpers/canary.js';
import { memoryLogger, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/** SPEC §1.4 and issue 4 item 7: with `stateFile`, runtime decisions survive a restart. */

interface RouteStatus {
  name: string;
  state?: string;
  weight?: number;
  step?: number;
  message?: string;
  since?: string;
}

async function routeStatus(adminUrl: string, name: string): Promise<RouteStatus | undefined> {
  const status = (await (await fetch(`${adminUrl}/status`)).json()) as { routes: RouteStatus[] };
  return status.routes.find((r) => r.name === name);
}

async function stateFileYaml(weight: number): Promise<string> {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  return canaryYaml(legacy.url, v2.url, `{ to: search-v2, weight: ${weight}, analysis: { interval: 1h } }`, { head: 'stateFile: state.json\n', rest: false });
}

async function restart(file: string) {
  const { logger, lines } = memoryLogger();
  const app = await startApp({ configFile: file, logger, watch: false });
  onTestFinished(() => app.drain());
  return { app, lines };
}

test('an ejected canary stays ejected after a restart, until its canary block changes', async () => {
  const yaml = await stateFileYaml(100);
  const proxy = await startProxy(yaml);
  const eject = await fetch(`${proxy.app.adminUrl}/routes/search/eject`, { method: 'POST' });
  expect(eject.status).toBe(200);
  const saved = async () => JSON.parse(await readFile(join(proxy.dir, 'state.json'), 'utf8')) as { routes: Record<string, { state: string }> };
  const deadline = Date.now() + 5000;
  while ((await saved().catch(() => undefined))?.routes.search?.state !== 'ejected' && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  expect((await saved()).routes.search?.state).toBe('ejected');
  await proxy.app.drain();

  const again = await restart(proxy.file);
  expect(await routeStatus(again.app.adminUrl, 'search')).toMatchObject({ state: 'ejected', weight: 0 });
  const res = await fetch(`${again.app.proxyUrl}/search`, { headers: { 'x-user-id': 'alice' } });
  expect(((await res.json()) as { name: string }).name).toBe('legacy');
  await again.app.drain();

  // A new release (the canary block changed) is not held back by the old one's ejection.
  await proxy.write(yaml.replace('weight: 100', 'weight: 50'));
  const released = await restart(proxy.file);
  expect(await routeStatus(released.app.adminUrl, 'search')).toMatchObject({ state: 'running', weight: 50 });
});

test('a corrupt state file is reported and ignored, never fatal, and kept aside rather than overwritten', async () => {
  const proxy = await startProxy(await stateFileYaml(100));
  await proxy.app.drain();
  const corrupt = '{"version": 1, "routes": {"search": ';
  await writeFile(join(proxy.dir, 'state.json'), corrupt);
  const again = await restart(proxy.file);
  expect(await routeStatus(again.app.adminUrl, 'search')).toMatchObject({ state: 'running', weight: 100 });
  const warning = again.lines.find((line) => line.event === 'state.ignored');
  expect(warning?.level).toBe(40);
  const [, aside = ''] = /kept as (\S+state\.json\.ignored-[\dTZ-]+)/.exec(String(warning?.problem)) ?? [];
  expect(await readFile(aside, 'utf8')).toBe(corrupt);
  await again.app.drain();
  // The state file itself is ficus's own again.
  expect(JSON.parse(await readFile(join(proxy.dir, 'state.json'), 'utf8'))).toMatchObject({ version: 1 });
});

test('a canary part-way through its steps resumes at the step it reached after a restart', async () => {
  // A clock of our own: the step is taken when the test says so, not when a timer races the drain.
  let now = 1_700_000_000_000;
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const canary = '{ to: search-v2, weight: 10, steps: [10, 40, 100], stepInterval: 1m, analysis: { interval: 10s, window: 5m, minRequests: 5, maxErrorRate: 0.01 } }';
  const proxy = await startProxy(canaryYaml(legacy.url, v2.url, canary, { head: 'stateFile: state.json\n', rest: false }), { clock: { now: () => now } });
  const users = Array.from({ length: 100 }, (_, i) => `user-${i}`);
  for (const id of users) {
    const res = await fetch(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': id } });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
  }
  expect(v2.seen.length).toBeGreaterThanOrEqual(5);
  now += 60_000;
  // The loop's real timer waits out a 10 s interval, after this test is over: take its verdict by hand.
  proxy.app.store.current.canaries[0]?.evaluate(now);
  const stepped = await routeStatus(proxy.app.adminUrl, 'search');
  expect(stepped).toMatchObject({ state: 'running', weight: 40, step: 2 });
  // Drain waits for the newest save, so the step is on disk when it returns.
  await proxy.app.drain();

  const again = await restart(proxy.file);
  expect(await routeStatus(again.app.adminUrl, 'search')).toMatchObject({ state: 'running', weight: 40, step: 2, message: stepped?.message, since: stepped?.since });
  const metrics = await (await fetch(`${again.app.adminUrl}/metrics`)).text();
  expect(metrics).toContain('ficus_canary_weight{route="search"} 40');
  // A user let in by the step (bucket 10..40 %) is still on the canary.
  const joined = users.find((id) => bucketOf('search', id) >= 1_000 && bucketOf('search', id) < 4_000);
  if (joined === undefined) throw new Error('no user between 10 % and 40 %');
  const res = await fetch(`${again.app.proxyUrl}/search`, { headers: { 'x-user-id': joined } });
  expect(((await res.json()) as { name: string }).name).toBe('search-v2');
});
