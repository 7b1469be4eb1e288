import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const RELOADS = 60;
const WORKERS = 10;
const SLOW_MS = 120;

/** Answers `{ "name": … }` after reading the body; on /slow, sends half, waits, sends the rest. */
function answering(name: string) {
  return (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (!req.url?.includes('/slow')) return res.end(JSON.stringify({ name }));
      res.write('{"name":');
      setTimeout(() => res.end(`"${name}"}`), SLOW_MS);
    });
  };
}

/**
 * Generation `n`: the `svc` service's URL and the `/alt` route's target both flip between the two
 * upstreams, so every reload rebuilds a service, retires its pool (its own connection settings
 * keep it apart from the pools of `a` and `b`) with slow requests still on it, and re-points a route.
 */
function generation(a: Upstream, b: Upstream, n: number): string {
  const [now, other] = n % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
  return routesYaml(`# generation ${n}
services:
  svc: { url: ${now === 'a' ? a.url : b.url}, timeouts: { connect: 2s } }
  a: { url: ${a.url} }
  b: { url: ${b.url} }
routes:
  - name: alt
    match: { path: /alt }
    to: ${other}
  - name: rest
    match: { path: / }
    to: svc
`);
}

test(`${RELOADS} reloads under a steady stream of concurrent requests fail none of them`, { timeout: 30_000 }, async () => {
  const [a, b] = [await startUpstream('a', answering('a')), await startUpstream('b', answering('b'))];
  const proxy = await startProxy(generation(a, b, 0), { watch: { debounceMs: 5, pollMs: 60_000 } });
  const agent = new Agent({ connections: WORKERS });
  onTestFinished(() => agent.close());

  const failures: string[] = [];
  const served = { a: 0, b: 0, slow: 0 };
  let running = true;
  const worker = async (w: number) => {
    for (let i = 0; running; i++) {
      const path = `${w % 2 === 0 ? '/alt' : '/svc'}${w % 3 === 0 ? '/slow' : ''}/${i}`;
      const post = w % 4 === 1;
      try {
        const res = await request(`${proxy.app.proxyUrl}${path}`, {
          dispatcher: agent,
          method: post ? 'POST' : 'GET',
          body: post ? Buffer.alloc(64 * 1024, 'x') : undefined,
        });
        const text = await res.body.text();
        const name = res.statusCode === 200 ? (JSON.parse(text) as { name: string }).name : '';
        if (name !== 'a' && name !== 'b') failures.push(`${path}: ${res.statusCode} ${text}`);
        else served[name]++;
        if (path.includes('/slow')) served.slow++;
      } catch (error) {
        failures.push(`${path}: ${String(error)}`);
      }
    }
  };
  const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));

  for (let n = 1; n <= RELOADS; n++) {
    const before = proxy.app.store.current.snapshot.hash;
    await proxy.write(generation(a, b, n));
    if (n % 2 === 0) {
      // Rename-save picked up by the watcher.
      await vi.waitFor(() => expect(proxy.app.store.current.snapshot.hash).not.toBe(before), { timeout: 5_000, interval: 2 });
    } else {
      // POST /reload; the watcher may get there first, which makes this one "unchanged".
      const res = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
      expect(['success', 'unchanged']).toContain(((await res.body.json()) as { result: string }).result);
      expect(proxy.app.store.current.snapshot.hash).not.toBe(before);
    }
    // Let some traffic run on each generation, slow requests included.
    const seen = served.a + served.b;
    await vi.waitFor(() => expect(served.a + served.b).toBeGreaterThan(seen + WORKERS), { timeout: 5_000, interval: 2 });
  }
  running = false;
  await Promise.all(workers);

  expect(failures).toEqual([]);
  expect(served.a).toBeGreaterThan(0);
  expect(served.b).toBeGreaterThan(0);
  expect(served.slow).toBeGreaterThan(RELOADS / 4);
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain(`ficus_config_reloads_total{result="success"} ${RELOADS}`);
  expect(metrics).not.toContain('result="failure"');
  expect(proxy.logs.filter((line) => line.event === 'access' && line.status !== 200)).toEqual([]);
});
