import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { startApp } from '../../src/app.js';
import { EVENT } from '../../src/observe/log.js';
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
  const status = async (adminUrl = proxy.app.adminUrl) =>
    ((await (await fetch(`${adminUrl}/status`)).json()) as { services: { name: string; state: string; active: string; message?: string }[] }).services.find((s) => s.name === 'orders');
  expect((await status())?.state).toBe('guarding');
  for (let i = 0; i < 6; i++) expect(await get()).toBe(500);
  const after = await until(status, (s) => s?.state === 'rolled-back');
  expect(after).toMatchObject({
    state: 'rolled-back',
    active: 'blue',
    configuredActive: 'green',
    reason: 'error_rate',
    message: expect.stringMatching(/^green rolled back to blue: error rate 1 > 0\.1 over \d+ requests$/),
  });
  expect(await get()).toBe(200);
  const metrics = await (await fetch(`${proxy.app.adminUrl}/metrics`)).text();
  expect(metrics).toContain('ficus_rollbacks_total{service="orders"} 1');
  // /explain answers for the traffic as it runs: on the colour rolled back to.
  const explained = (await (await fetch(`${proxy.app.adminUrl}/explain?url=/x`)).json()) as { color: string; endpoints: string[]; notes: string[] };
  expect(explained).toMatchObject({ color: 'blue', endpoints: [blue.url] });
  expect(explained.notes).toContain('orders was rolled back by its guard: live traffic is on blue, though the file says green');

  // Said once, at warn, with the numbers it was decided on; the verdict may have come after
  // the fifth failure (minRequests) or the sixth.
  const lines = proxy.logs.filter((l) => l.event === EVENT.rolledBack);
  expect(lines).toHaveLength(1);
  const line = lines[0];
  expect(line).toMatchObject({ level: 40, service: 'orders', from: 'green', to: 'blue', reason: 'error_rate', message: after?.message, errorRate: 1, p99Ms: expect.any(Number) });
  expect(line?.requests).toBeOneOf([5, 6]);
  expect(line?.msg).toContain(`${String(after?.message)}; live traffic is back on blue`);

  // The audit record carries the same numbers as the log line: one decision, told once.
  await proxy.app.audit.settled();
  const audit = (await readFile(join(proxy.dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const rollbacks = audit.filter((r) => r.kind === 'rollback');
  expect(rollbacks).toEqual([
    {
      time: expect.any(String),
      kind: 'rollback',
      service: 'orders',
      from: 'green',
      to: 'blue',
      reason: 'error_rate',
      message: after?.message,
      requests: line?.requests,
      errorRate: 1,
      p99Ms: line?.p99Ms,
      hash: proxy.app.store.current.snapshot.hash,
    },
  ]);
  expect(new Date(String(rollbacks[0]?.time)).toISOString()).toBe(rollbacks[0]?.time);

  const state = await until(async () => JSON.parse(await readFile(join(proxy.dir, 'state.json'), 'utf8')) as { services: { orders: { state: string } } }, (s) => s.services.orders.state === 'rolled-back');
  expect(state.services.orders.state).toBe('rolled-back');
  await proxy.app.drain();

  const { logger } = memoryLogger();
  const again = await startApp({ configFile: proxy.file, logger, watch: false });
  onTestFinished(() => again.drain());
  const res = await fetch(`${again.proxyUrl}/x`);
  expect(res.status).toBe(200);
  // The restarted proxy also tells the operator why it is not serving the file's colour.
  expect(await status(again.adminUrl)).toMatchObject({ state: 'rolled-back', active: 'blue', configuredActive: 'green', reason: 'error_rate', message: after?.message });
});

test('a cutover is audited when live traffic changes colour: after a rollback, a fixed green re-watched is one; the file set back to the colour serving is none', async () => {
  const blue = await startUpstream('blue');
  const green = await startUpstream('green', (req, res) => {
    req.resume();
    res.writeHead(500).end('boom');
  });
  const green2 = await startUpstream('green2');
  const yaml = (active: string, greenUrl: string) =>
    routesYaml(`auditLog: audit.jsonl
services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${greenUrl} }
    active: ${active}
    guard: { interval: 5m, window: 5m, consecutiveFailures: 2 }
routes:
  - { name: rest, match: { path: / }, to: orders }
`);
  const proxy = await startProxy(yaml('blue', green.url));
  const reload = async (text: string) => {
    await proxy.write(text);
    expect((await proxy.app.reload('admin')).result).toBe('success');
  };
  const cutovers = async () => {
    await proxy.app.audit.settled();
    const lines = (await readFile(join(proxy.dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n');
    return lines.map((l) => JSON.parse(l) as { kind: string; from?: string; to?: string }).filter((r) => r.kind === 'cutover').map((r) => `${r.from ?? ''}→${r.to ?? ''}`);
  };

  await reload(yaml('green', green.url));
  // POSTs are never retried: two 500s in a row roll green back to blue.
  for (let i = 0; i < 2; i++) await (await fetch(`${proxy.app.proxyUrl}/x`, { method: 'POST', body: 'x' })).arrayBuffer();
  expect(proxy.logs.some((l) => l.event === 'service.rolled_back')).toBe(true);
  // The fixed release: only green's URL changes, and live traffic moves to it.
  await reload(yaml('green', green2.url));
  expect((await fetch(`${proxy.app.proxyUrl}/x`)).headers.get('x-upstream')).toBe('green2');
  expect(await cutovers()).toEqual(['blue→green', 'blue→green']);

  // The bad release again (green stays green: no cutover), rolled back (a rollback, audited as
  // one), then acknowledged in the file: blue was serving already, so no cutover either.
  await reload(yaml('green', green.url));
  for (let i = 0; i < 2; i++) await (await fetch(`${proxy.app.proxyUrl}/x`, { method: 'POST', body: 'x' })).arrayBuffer();
  await reload(yaml('blue', green.url));
  expect((await fetch(`${proxy.app.proxyUrl}/x`)).headers.get('x-upstream')).toBe('blue');
  expect(await cutovers()).toEqual(['blue→green', 'blue→green']);
});
