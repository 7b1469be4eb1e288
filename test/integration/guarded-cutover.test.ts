import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { startApp } from '../../src/app.js';
import { memoryLogger, routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/** Polls `read` until `ok` holds or `ms` pass (no event tells when a verdict has been taken). */
async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setImmediate(r));
  }
}

test('a failing green is rolled back, and stays rolled back across a restart', async () => {
  const blue = await startUpstream('blue');
  const green = await startUpstream('green', (_req, res) => { res.writeHead(500); res.end('boom'); });
  const yaml = (active: string) => routesYaml(`stateFile: state.json
auditLog: audit.jsonl
services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: ${active}
    guard: { interval: 200ms, window: 10s, minRequests: 5, maxErrorRate: 0.1 }
routes:
  - { name: rest, match: { path: / }, to: orders }
`);
  const proxy = await startProxy(yaml('blue'));
  const get = async () => (await fetch(`${proxy.app.proxyUrl}/x`)).status;
  expect(await get()).toBe(200);
  await proxy.write(yaml('green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  const status = async () => ((await (await fetch(`${proxy.app.adminUrl}/status`)).json()) as { services: { name: string; state: string; active: string }[] }).services.find((s) => s.name === 'orders');
  expect((await status())?.state).toBe('guarding');
  for (let i = 0; i < 6; i++) expect(await get()).toBe(500);
  const after = await until(status, (s) => s?.state === 'rolled-back');
  expect(after).toMatchObject({ state: 'rolled-back', active: 'blue', configuredActive: 'green', reason: 'error_rate' });
  expect(await get()).toBe(200);
  const metrics = await (await fetch(`${proxy.app.adminUrl}/metrics`)).text();
  expect(metrics).toContain('ficus_rollbacks_total{service="orders"} 1');
  await proxy.app.audit.settled();
  expect(await readFile(join(proxy.dir, 'audit.jsonl'), 'utf8')).toContain('"kind":"rollback"');
  const state = await until(async () => JSON.parse(await readFile(join(proxy.dir, 'state.json'), 'utf8')) as { services: { orders: { state: string } } }, (s) => s.services.orders.state === 'rolled-back');
  expect(state.services.orders.state).toBe('rolled-back');
  expect(proxy.logs.filter((l) => l.event === 'service.rolled_back')).toHaveLength(1);
  await proxy.app.drain();

  const { logger } = memoryLogger();
  const again = await startApp({ configFile: proxy.file, logger, watch: false });
  onTestFinished(() => again.drain());
  const res = await fetch(`${again.proxyUrl}/x`);
  expect(res.status).toBe(200);
});
