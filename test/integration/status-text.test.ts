import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import { status } from '../../src/admin/status-command.js';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

/* `ficus status` as a human reads it, rendered in-process from a running proxy's real /status. */

async function statusText(proxy: TestProxy): Promise<string> {
  let out = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    expect(await status(proxy.app.adminUrl, false)).toBe(0);
  } finally {
    write.mockRestore();
  }
  return out;
}

/** The one line of the services table that shows `url`. */
function row(text: string, url: string): string {
  const lines = text.split('\n').filter((line) => line.includes(`${url} `) || line.endsWith(url));
  expect(lines, text).toHaveLength(1);
  return lines[0] ?? '';
}

const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Health checks and guard decisions run on their own, with no event to await but the log line. */
const logged = (proxy: TestProxy, event: string) => vi.waitFor(() => expect(proxy.logs.some((l) => l.event === event)).toBe(true), { timeout: 5_000, interval: 10 });

test('a blue/green service shows its active colour, its guard state and which colour is idle, in the text and on the status page, through a cutover and a rollback', async () => {
  const blue = await startUpstream('blue');
  const green = await startUpstream('green', (_req, res) => res.writeHead(500).end('boom'));
  // A long window and interval: only the failures in a row decide, not a timed verdict.
  const yaml = (active: string) =>
    routesYaml(`services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: ${active}
    guard: { interval: 5m, window: 5m, consecutiveFailures: 2 }
routes:
  - { name: rest, match: { path: / }, to: orders }
`);
  const proxy = await startProxy(yaml('blue'));

  // Stable is the normal case, so no state is named.
  let text = await statusText(proxy);
  expect(row(text, blue.url)).toMatch(new RegExp(`^ {2}orders \\(blue/green, active blue\\) +blue: ${escaped(blue.url)} +up$`));
  expect(row(text, green.url)).toMatch(new RegExp(`^ +green: ${escaped(green.url)} +up \\(idle colour\\)$`));

  await proxy.write(yaml('green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  text = await statusText(proxy);
  expect(row(text, blue.url)).toMatch(new RegExp(`^ {2}orders \\(blue/green, active green, guarding\\) +blue: ${escaped(blue.url)} +up \\(idle colour\\)$`));
  expect(row(text, green.url)).toMatch(new RegExp(`^ +green: ${escaped(green.url)} +up$`));
  // The status page says the same.
  const page = async () => (await request(`${proxy.app.adminUrl}/`)).body.text();
  expect(await page()).toContain('guarding until');

  for (let i = 0; i < 2; i++) expect((await request(`${proxy.app.proxyUrl}/x`, { method: 'POST', body: 'x' })).statusCode).toBe(500);
  await logged(proxy, 'service.rolled_back');
  // The file still says green; the text must show the colour live traffic is actually on.
  text = await statusText(proxy);
  expect(row(text, blue.url)).toMatch(new RegExp(`^ {2}orders \\(blue/green, active blue, rolled-back\\) +blue: ${escaped(blue.url)} +up$`));
  expect(row(text, green.url)).toMatch(new RegExp(`^ +green: ${escaped(green.url)} +up \\(idle colour\\)$`));
  expect(await page()).toContain('<b class="bad">rolled back</b>: green rolled back to blue');
});

test('an endpoint ejected by outlier detection shows EJECTED until when, by the injected clock, and up once that has passed', async () => {
  let now = Date.parse('2025-03-01T12:00:00Z');
  const live = await startUpstream('live');
  const deadUrl = `http://127.0.0.1:${await refusedPort()}`;
  // No jitter, so the first ejection lasts exactly the 30 s base.
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${deadUrl}, ${live.url}], outlier: { consecutiveFailures: 1 } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
    { clock: { now: () => now }, random: () => 0 },
  );
  // POSTs are never retried, so the dead endpoint's one pick is its one failure.
  for (let i = 0; i < 2; i++) await (await request(`${proxy.app.proxyUrl}/o`, { method: 'POST', body: 'x' })).body.dump();

  let text = await statusText(proxy);
  expect(row(text, deadUrl)).toMatch(new RegExp(`^ {2}app +${escaped(deadUrl)} +EJECTED until 2025-03-01T12:00:30\\.000Z$`));
  expect(row(text, live.url)).toMatch(/ up$/);

  now += 30_000;
  text = await statusText(proxy);
  expect(row(text, deadUrl)).toMatch(new RegExp(`^ {2}app +${escaped(deadUrl)} +up$`));
});

test('an endpoint failing its health check shows so, and no ejection', async () => {
  const sick = await startUpstream('sick', (_req, res) => res.writeHead(503).end());
  const well = await startUpstream('well');
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${sick.url}, ${well.url}], health: { path: /healthz, interval: 50ms, timeout: 200ms } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
  await logged(proxy, 'endpoint.unhealthy');

  const text = await statusText(proxy);
  expect(row(text, sick.url)).toMatch(new RegExp(`^ {2}app +${escaped(sick.url)} +HEALTH CHECK FAILING$`));
  expect(row(text, well.url)).toMatch(/ up$/);
});

test('endpoints failing their health checks that serve anyway, for want of any that passes, say so (panic routing)', async () => {
  const sick = await startUpstream('sick', (_req, res) => res.writeHead(503).end());
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { url: ${sick.url}, health: { path: /healthz, interval: 50ms, timeout: 200ms } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
  await logged(proxy, 'endpoint.unhealthy');

  const text = await statusText(proxy);
  expect(row(text, sick.url)).toMatch(new RegExp(`^ {2}app +${escaped(sick.url)} +HEALTH CHECK FAILING, serving anyway \\(panic routing\\)$`));
  const status = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { services: { endpoints: { up: boolean; panic?: boolean }[] }[] };
  expect(status.services[0]?.endpoints[0]).toMatchObject({ up: false, healthCheck: 'failing', panic: true });
});
