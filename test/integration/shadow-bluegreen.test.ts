import { expect, test, vi } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/** A shadow that is a blue/green service gets its copies where its live traffic goes: after a rollback, the colour left for. */

test('after a guard rolls a blue/green shadow back, its copies go to the colour live traffic went back to', async () => {
  const legacy = await startUpstream('legacy');
  const blue = await startUpstream('blue');
  const green = await startUpstream('green', (_req, res) => {
    res.writeHead(500);
    res.end('boom');
  });
  const yaml = (active: string) =>
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: ${active}
    guard: { interval: 100ms, window: 10s, minRequests: 5, maxErrorRate: 0.1 }
routes:
  - { name: mirrored, match: { path: /mirrored }, to: legacy, shadow: { to: orders } }
  - { name: orders, match: { path: / }, to: orders }
`);
  const proxy = await startProxy(yaml('blue'));
  await proxy.write(yaml('green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  for (let i = 0; i < 6; i++) expect((await fetch(`${proxy.app.proxyUrl}/live`)).status).toBe(500);
  const status = async () => ((await (await fetch(`${proxy.app.adminUrl}/status`)).json()) as { services: { name: string; state: string }[] }).services.find((s) => s.name === 'orders');
  await vi.waitFor(async () => expect((await status())?.state).toBe('rolled-back'), { timeout: 5_000, interval: 20 });

  expect((await fetch(`${proxy.app.proxyUrl}/mirrored`)).status).toBe(200);
  const copies = (seen: typeof blue.seen) => seen.filter((s) => s.headers['x-ficus-shadow'] === '1');
  await vi.waitFor(() => expect(copies(blue.seen)).toHaveLength(1), { timeout: 3_000, interval: 10 });
  expect(copies(green.seen)).toHaveLength(0);
});
