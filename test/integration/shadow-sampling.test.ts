import { Readable } from 'node:stream';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import { metricSum } from '../helpers/metrics.js';
import { startShadowed } from '../helpers/shadow.js';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Which requests are copied, and what the copy carries: a sample (`percent`) of the requests
 * whose method is listed (GET and HEAD unless said otherwise), with the primary's method, path,
 * headers and body, marked `x-ficus-shadow: 1`.
 */

/** Always copied: once its copy has arrived, any copy sent before it has too. */
const SENTINEL = '  - { name: sentinel, match: { exact: /sentinel }, to: legacy, shadow: { to: fresh } }\n';

async function sentinel(proxy: TestProxy, fresh: Upstream): Promise<string[]> {
  await (await request(`${proxy.app.proxyUrl}/sentinel`)).body.dump();
  await vi.waitFor(() => expect(fresh.seen.at(-1)?.url).toBe('/sentinel'));
  return fresh.seen.map((r) => `${r.method} ${r.url}`);
}

async function send(proxy: TestProxy, path: string, init: Parameters<typeof request>[1] = {}): Promise<string> {
  const res = await request(`${proxy.app.proxyUrl}${path}`, init);
  expect(res.statusCode).toBe(200);
  return res.body.text();
}

test('percent 100 copies every GET with the same method, path, query and headers, marked x-ficus-shadow', async () => {
  const { legacy, fresh, proxy } = await startShadowed('{ to: fresh }');
  const body = JSON.parse(await send(proxy, '/orders/7?expand=items', { headers: { 'x-tenant': 'acme', 'accept-language': 'fr' } })) as { name: string };
  expect(body.name).toBe('legacy');
  await vi.waitFor(() => expect(fresh.seen).toHaveLength(1));
  const [primary, copy] = [legacy.seen[0], fresh.seen[0]];
  expect(copy?.method).toBe('GET');
  expect(copy?.url).toBe('/orders/7?expand=items');
  expect(copy?.headers['x-ficus-shadow']).toBe('1');
  expect(primary?.headers['x-ficus-shadow']).toBeUndefined();
  for (const name of ['x-tenant', 'accept-language', 'x-request-id', 'x-forwarded-for', 'host']) expect(copy?.headers[name]).toBe(primary?.headers[name]);
});

test('percent 0 copies nothing', async () => {
  const { fresh, proxy } = await startShadowed('{ to: fresh, percent: 0 }', SENTINEL);
  for (let i = 0; i < 5; i++) await send(proxy, `/a${i}`);
  expect(await sentinel(proxy, fresh)).toEqual(['GET /sentinel']);
});

test('a request is copied when random() * 100 < percent', async () => {
  const draws = [0.05, 0.5, 0.299, 0.3, 0.99];
  const { fresh, proxy } = await startShadowed('{ to: fresh, percent: 30 }', '', { random: () => draws.shift() ?? 1 });
  for (let i = 0; i < 5; i++) await send(proxy, `/r${i}`);
  await vi.waitFor(() => expect(fresh.seen.map((r) => r.url).sort()).toEqual(['/r0', '/r2']));
  expect(draws).toEqual([]);
});

test('HEAD is copied by default, POST is not', async () => {
  const { fresh, proxy } = await startShadowed('{ to: fresh }', SENTINEL);
  await send(proxy, '/h', { method: 'HEAD' });
  await send(proxy, '/p', { method: 'POST', body: 'order=1' });
  expect(await sentinel(proxy, fresh)).toEqual(['HEAD /h', 'GET /sentinel']);
});

test.each<[string, (text: string) => string | Readable]>([
  ['with a Content-Length', (text: string) => text],
  ['chunked', (text: string) => Readable.from([text.slice(0, 1000), text.slice(1000)])],
])('a POST body %s arrives intact at the shadow when methods lists POST', async (_name, bodyOf) => {
  const received: Buffer[] = [];
  const legacy = await startUpstream('legacy');
  const fresh = await startUpstream('fresh', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push(Buffer.concat(chunks));
      res.end('ok');
    });
  });
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  fresh: { url: ${fresh.url} }
routes:
  - { name: api, match: { path: / }, to: legacy, shadow: { to: fresh, methods: [POST] } }
`),
  );
  const text = 'é'.repeat(1500);
  const answer = JSON.parse(await send(proxy, '/orders', { method: 'POST', body: bodyOf(text), headers: { 'content-type': 'text/plain; charset=utf-8' } })) as { bytes: number };
  expect(answer.bytes).toBe(Buffer.byteLength(text));
  await vi.waitFor(() => expect(received).toHaveLength(1));
  expect(received[0]?.toString('utf8')).toBe(text);
  expect(fresh.seen[0]?.method).toBe('POST');
  expect(fresh.seen[0]?.headers['content-type']).toBe('text/plain; charset=utf-8');
});

test.each<[string, (text: string) => string | Readable]>([
  ['declared by Content-Length', (text: string) => text],
  ['found while reading a chunked body', (text: string) => Readable.from([text.slice(0, 600), text.slice(600)])],
])('a request body over maxBodyBytes (%s) is not copied, and counted; the primary gets all of it', async (_name, bodyOf) => {
  const { fresh, proxy } = await startShadowed('{ to: fresh, methods: [POST, GET], maxBodyBytes: 1000, compare: true }', SENTINEL);
  const answer = JSON.parse(await send(proxy, '/big', { method: 'POST', body: bodyOf('x'.repeat(1200)) })) as { bytes: number };
  expect(answer.bytes).toBe(1200);
  expect(await sentinel(proxy, fresh)).toEqual(['GET /sentinel']);
  const metric = await proxy.app.metrics.registry.getSingleMetric('ficus_shadow_dropped_total')?.get();
  expect(metric?.values).toEqual([{ value: 1, labels: { route: 'api', reason: 'body_too_large' } }]);
  const compared = await proxy.app.metrics.registry.getSingleMetric('ficus_shadow_comparisons_total')?.get();
  expect(compared?.values).toEqual([{ value: 1, labels: { route: 'api', result: 'skipped' } }]);
});

test('a blue/green shadow service gets the copies on its active colour', async () => {
  const legacy = await startUpstream('legacy');
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  fresh: { blue: { url: ${blue.url} }, green: { url: ${green.url} }, active: green }
routes:
  - { name: api, match: { path: / }, to: legacy, shadow: { to: fresh } }
`),
  );
  await send(proxy, '/a');
  await vi.waitFor(() => expect(green.seen).toHaveLength(1));
  expect(blue.seen).toHaveLength(0);
  await vi.waitFor(async () => {
    const metric = await proxy.app.metrics.registry.getSingleMetric('ficus_requests_total')?.get();
    expect(metric?.values.find((v) => v.labels.side === 'shadow')?.labels).toEqual({ route: 'api', service: 'fresh', color: 'green', side: 'shadow', code: '200' });
  });
});

test('without compare, a copy that has its answer frees its place: maxConcurrent 1 still copies one request after another', async () => {
  const { fresh, proxy } = await startShadowed('{ to: fresh, maxConcurrent: 1 }');
  for (let i = 1; i <= 3; i++) {
    await send(proxy, `/one-by-one/${i}`);
    // The copy's exchange is counted once its answer is read, after its place is given back.
    await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_requests_total', { side: 'shadow' })).toBe(i));
  }
  expect(fresh.seen.map((r) => r.url)).toEqual(['/one-by-one/1', '/one-by-one/2', '/one-by-one/3']);
  expect(await metricSum(proxy.app, 'ficus_shadow_dropped_total', {})).toBe(0);
});

test('a chunked body the client is refused with 413 for (limits.maxBodyBytes) is never copied, whatever the shadow allows', async () => {
  const legacy = await startUpstream('legacy');
  const fresh = await startUpstream('fresh');
  const proxy = await startProxy(
    routesYaml(`limits: { maxBodyBytes: 1000 }
services:
  legacy: { url: ${legacy.url} }
  fresh: { url: ${fresh.url} }
routes:
${SENTINEL}  - { name: api, match: { path: / }, to: legacy, shadow: { to: fresh, methods: [POST, GET] } }
`),
  );
  const res = await request(`${proxy.app.proxyUrl}/big`, { method: 'POST', body: Readable.from(['x'.repeat(600), 'x'.repeat(600)]) });
  expect(res.statusCode).toBe(413);
  await res.body.dump();
  expect(await sentinel(proxy, fresh)).toEqual(['GET /sentinel']);
  expect(await metricSum(proxy.app, 'ficus_shadow_dropped_total', { reason: 'body_too_large' })).toBe(1);
});
