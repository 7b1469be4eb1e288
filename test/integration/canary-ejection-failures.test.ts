import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { EVENT } from '../../src/observe/log.js';
import { bucketOf } from '../../src/routing/bucket.js';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

/*
 * SPEC §1.4: what a canary failure is (5xx, connect errors, resets, timeouts; never 4xx nor a
 * client's abort), and `consecutiveFailures` failures in a row ejecting at once, on the request
 * path: a dead canary costs its users at most that many failed requests.
 */

const IN_A_ROW = 3;
// Analysis far in the future: only failures in a row can eject here.
const ANALYSIS = `{ interval: 1h, consecutiveFailures: ${IN_A_ROW} }`;
const USERS = Array.from({ length: 40 }, (_, i) => `user-${i}`);
const onCanary = USERS.filter((id) => bucketOf('search', id) < 5_000);

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function setup(canaryUrl: string) {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services:
  legacy: { url: ${legacy.url} }
  search-v2: { url: ${canaryUrl}, timeouts: { response: 150ms } }
routes:
  - name: search
    match: { path: /search }
    to: legacy
    canary: { to: search-v2, weight: 50, analysis: ${ANALYSIS} }
`),
  );
  return { proxy, legacy };
}

async function get(proxy: TestProxy, user: string) {
  const res = await request(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': user } });
  await res.body.dump();
  return { status: res.statusCode, by: res.headers['x-upstream'] ?? res.headers['x-served-by'] };
}

const state = (proxy: TestProxy) => proxy.app.store.current.canaries[0]?.state;

const answering = (status: number): Handler => (req, res) => {
  req.resume();
  res.writeHead(status, { 'x-served-by': 'search-v2' });
  res.end();
};

test.each([
  { kind: '500 Internal Server Error', handler: answering(500), seen: 500 },
  { kind: '503 Service Unavailable', handler: answering(503), seen: 503 },
  { kind: 'a reset connection', handler: ((req) => req.socket.destroy()) as Handler, seen: 502 },
  { kind: 'no answer within the response timeout', handler: (() => undefined) as Handler, seen: 504 },
  { kind: 'connection refused (the canary died)', handler: undefined, seen: 502 },
])('$kind is a failure: $seen, and the canary is ejected after consecutiveFailures of them, at most', async ({ handler, seen }) => {
  const url = handler ? (await startUpstream('search-v2', handler)).url : `http://127.0.0.1:${await refusedPort()}`;
  const { proxy } = await setup(url);
  expect(onCanary.length).toBeGreaterThanOrEqual(IN_A_ROW + 5);

  // The first IN_A_ROW canary users at once (a response timeout is coarse: about a second),
  // then the others one by one: exactly the first ones see the failure, the rest are on legacy.
  const first = await Promise.all(onCanary.slice(0, IN_A_ROW).map((id) => get(proxy, id)));
  expect(first.map((r) => r.status)).toEqual(Array<number>(IN_A_ROW).fill(seen));
  for (const id of onCanary.slice(IN_A_ROW)) expect(await get(proxy, id)).toEqual({ status: 200, by: 'legacy' });
  expect(state(proxy)).toBe('ejected');
  expect(proxy.logs.filter((l) => l.event === EVENT.canaryEjected)).toEqual([
    expect.objectContaining({ level: 40, reason: 'consecutive_failures', trigger: 'request', message: `${IN_A_ROW} canary failures in a row ≥ consecutiveFailures ${IN_A_ROW}` }),
  ]);
  for (const id of onCanary.slice(0, IN_A_ROW)) expect(await get(proxy, id)).toEqual({ status: 200, by: 'legacy' });
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain('ficus_ejections_total{route="search",reason="consecutive_failures"} 1');
});

test.each([
  { kind: '404 Not Found', handler: answering(404), seen: 404 },
  { kind: '429 Too Many Requests', handler: answering(429), seen: 429 },
  { kind: '400 Bad Request', handler: answering(400), seen: 400 },
])('$kind is not a failure: the canary keeps running', async ({ handler, seen }) => {
  const v2 = await startUpstream('search-v2', handler);
  const { proxy } = await setup(v2.url);
  for (const id of onCanary) expect((await get(proxy, id)).status).toBe(seen);
  expect(state(proxy)).toBe('running');
  expect(v2.seen).toHaveLength(onCanary.length);
});

test("a client's abort is not the canary's failure", async () => {
  const v2 = await startUpstream('search-v2', () => undefined);
  const { proxy } = await setup(v2.url);
  // Each client gives up before the canary answers (it never does within the client's patience).
  for (const id of onCanary.slice(0, IN_A_ROW + 2)) {
    await expect(request(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': id }, signal: AbortSignal.timeout(30) })).rejects.toThrow();
  }
  // Each abort reached the proxy, which classified it: nothing of it is in flight any more.
  await pollUntil(async () => {
    const doc = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { services: { name: string; endpoints: { inflight: number }[] }[] };
    return doc.services.find((s) => s.name === 'search-v2')?.endpoints[0]?.inflight === 0 && v2.seen.length === IN_A_ROW + 2;
  }, 2_000);
  expect(state(proxy)).toBe('running');
  expect(proxy.logs.filter((l) => l.event === EVENT.canaryEjected)).toEqual([]);
});

async function pollUntil(done: () => Promise<boolean>, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`not within ${deadlineMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
