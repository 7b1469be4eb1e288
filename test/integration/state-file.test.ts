import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { startApp } from '../../src/app.js';
import { canaryYaml } from '../helpers/canary.js';
import { memoryLogger, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/** SPEC §1.4 and issue 4 item 7: with `stateFile`, runtime decisions survive a restart. */

interface RouteStatus {
  name: string;
  state?: string;
  weight?: number;
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

test('a corrupt state file is reported and ignored, never fatal', async () => {
  const proxy = await startProxy(await stateFileYaml(100));
  await proxy.app.drain();
  await writeFile(join(proxy.dir, 'state.json'), '{"version": 1, "routes": {"search": ');
  const again = await restart(proxy.file);
  expect(await routeStatus(again.app.adminUrl, 'search')).toMatchObject({ state: 'running', weight: 100 });
  const warning = again.lines.find((line) => line.event === 'state.ignored');
  expect(warning?.level).toBe(40);
  expect(JSON.stringify(warning)).toContain('state.json');
});
