import { connect } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { parseRoutes } from '../../src/config/load.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/** Sends a head announcing a large body, then one body byte every `gapMs`; resolves when ficus closes, or `undefined` at `maxMs`. */
function drip(port: number, path: string, gapMs: number, maxMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    onTestFinished(() => void socket.destroy());
    socket.on('error', () => undefined);
    socket.resume();
    socket.write(`POST ${path} HTTP/1.1\r\nhost: a\r\ncontent-length: 1000000\r\n\r\n`);
    const timer = setInterval(() => socket.destroyed || socket.write('a'), gapMs);
    const deadline = setTimeout(() => resolve(undefined), maxMs);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(deadline);
      resolve(performance.now() - started);
    });
  });
}

test.each(['/paused', '/nowhere'])('a body stalled past limits.bodyTimeout on a request ficus answers itself (%s) loses its connection', async (path) => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`limits: { headerTimeout: 300ms, bodyTimeout: 300ms }\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: paused, match: { path: /paused }, respond: { status: 503, body: paused } }\n  - { name: api, match: { path: /api }, to: legacy }\n`),
  );
  // A byte a second keeps the connection no longer than a silent client would.
  const closedAfter = await drip(Number(new URL(proxy.app.proxyUrl).port), path, 1_000, 3_000);
  expect(closedAfter).toBeDefined();
  expect(closedAfter).toBeLessThan(1_500);
});

test.each([
  ['timeouts: { idle: 0s }', 'timeouts.idle'],
  ['timeouts: { connect: 0s }', 'timeouts.connect'],
  ['timeouts: { response: 0s }', 'timeouts.response'],
  ['limits: { headerTimeout: 0s }', 'limits.headerTimeout'],
  ['limits: { bodyTimeout: 0s }', 'limits.bodyTimeout'],
  ['limits: { sendTimeout: 0s }', 'limits.sendTimeout'],
  ['limits: { tunnelIdleTimeout: 0s }', 'limits.tunnelIdleTimeout'],
  ['', 'services.legacy.timeouts.idle'],
])('%s → %s: 0s is refused', (block, path) => {
  const service = path.startsWith('services.') ? '{ url: "http://127.0.0.1:1", timeouts: { idle: 0s } }' : '{ url: "http://127.0.0.1:1" }';
  const result = parseRoutes(routesYaml(`${block}\nservices:\n  legacy: ${service}\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`), 'r.yaml');
  expect(result.ok).toBe(false);
  expect(JSON.stringify(result)).toContain(path);
  expect(JSON.stringify(result)).toContain('must be longer than 0');
});

test('drainTimeout: 0s stays allowed (no grace period)', () => {
  expect(parseRoutes(routesYaml('drainTimeout: 0s\nservices:\n  legacy: { url: "http://127.0.0.1:1" }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n'), 'r.yaml').ok).toBe(true);
});

test('timeouts.response never fires early: answers that come inside it are served, every time', async () => {
  // The client library's timers tick every half second, and one started while the wheel turns
  // (another request being timed) counts from the tick before it: a 700 ms limit fired 500 to
  // 1000 ms after it started, so before a 650 ms answer about one time in three. Back-to-back
  // requests of 650 ms move across the half-second tick, and five of them meet that third.
  const slow = await startUpstream('slow', (req, res) => void setTimeout(() => res.end('in time'), req.url === '/long' ? 5_000 : 650));
  const proxy = await startProxy(
    routesYaml(`services:\n  slow: { url: ${slow.url}, timeouts: { response: 700ms } }\n  long: { url: ${slow.url}, timeouts: { response: 10s } }\nroutes:\n  - { name: long, match: { exact: /long }, to: long }\n  - { name: rest, match: { path: / }, to: slow }\n`),
  );
  const turning = request(`${proxy.app.proxyUrl}/long`).then((res) => res.body.dump());
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await request(`${proxy.app.proxyUrl}/x${i}`);
    statuses.push(res.statusCode);
    await res.body.dump();
  }
  expect(statuses).toEqual([200, 200, 200, 200, 200]);
  await turning;
});
