import { once } from 'node:events';
import { connect } from 'node:net';
import { PassThrough } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';
import { metricSum } from '../helpers/metrics.js';
import { shadowRoutesYaml } from '../helpers/shadow.js';

/**
 * The client only ever waits for the primary: a shadow that hangs, dies, times out or is
 * saturated changes nothing for it, and is counted.
 */

async function proxyWithShadow(shadowUrl: string, options = ''): Promise<TestProxy> {
  return startProxy(shadowRoutesYaml(await primary(), shadowUrl, options));
}


async function primary(): Promise<string> {
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`primary ${req.url}`));
  });
  return legacy.url;
}

/**
 * A shadow service that takes every request and never answers it. Its connections are cut
 * before the proxy drains (cleanups run last-registered first), so the drain does not wait
 * on copies still open.
 */
async function hangingShadow() {
  const held: { req: IncomingMessage; res: ServerResponse }[] = [];
  const upstream = await startUpstream('fresh', (req, res) => void held.push({ req, res }));
  return { upstream, held, closeFirst: () => onTestFinished(() => upstream.close()) };
}

const count = (proxy: TestProxy, name: string, labels: Record<string, string>): Promise<number> => metricSum(proxy.app, name, labels);

async function get(proxy: TestProxy, path: string): Promise<{ status: number; body: string }> {
  const res = await request(`${proxy.app.proxyUrl}${path}`);
  return { status: res.statusCode, body: await res.body.text() };
}

test('the client has its whole answer while the copy to a hanging shadow is still open', async () => {
  const shadow = await hangingShadow();
  const proxy = await proxyWithShadow(shadow.upstream.url, ', timeout: 30s');
  shadow.closeFirst();
  expect(await get(proxy, '/a')).toEqual({ status: 200, body: 'primary /a' });
  // Only now look at the shadow: it has the copy, and has not answered it.
  await vi.waitFor(() => expect(shadow.held).toHaveLength(1));
  const copy = shadow.held[0];
  expect(copy?.res.writableEnded).toBe(false);
  expect(copy?.req.socket.destroyed).toBe(false);
  expect(await count(proxy, 'ficus_shadow_comparisons_total', {})).toBe(0);
  expect(copy?.req.headers['x-ficus-shadow']).toBe('1');
});

test('a shadow that refuses connections: the client is served, the copy counts as an error', async () => {
  const proxy = await proxyWithShadow(`http://127.0.0.1:${await refusedPort()}`);
  expect(await get(proxy, '/a')).toEqual({ status: 200, body: 'primary /a' });
  await vi.waitFor(async () => expect(await count(proxy, 'ficus_shadow_comparisons_total', { result: 'error' })).toBe(1));
  expect(await count(proxy, 'ficus_requests_total', { side: 'shadow', code: '000', service: 'fresh' })).toBe(1);
  // A shadow never decides anything about live traffic: no upstream error, no ejection, for either.
  expect(await count(proxy, 'ficus_upstream_errors_total', {})).toBe(0);
});

test('a shadow that dies mid-answer: the client is served, the copy counts as an error', async () => {
  const fresh = await startUpstream('fresh', (_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial', () => res.destroy());
  });
  const proxy = await proxyWithShadow(fresh.url);
  expect(await get(proxy, '/a')).toEqual({ status: 200, body: 'primary /a' });
  await vi.waitFor(async () => expect(await count(proxy, 'ficus_shadow_comparisons_total', { result: 'error' })).toBe(1));
});

test('a shadow slower than its timeout counts as an error', async () => {
  const shadow = await hangingShadow();
  const proxy = await proxyWithShadow(shadow.upstream.url, ', timeout: 150ms');
  expect(await get(proxy, '/a')).toEqual({ status: 200, body: 'primary /a' });
  await vi.waitFor(async () => expect(await count(proxy, 'ficus_shadow_comparisons_total', { result: 'error' })).toBe(1));
  expect(await count(proxy, 'ficus_requests_total', { side: 'shadow', code: '000' })).toBe(1);
  // The deadline ended the copy on the shadow's side too.
  await vi.waitFor(() => expect(shadow.held[0]?.req.socket.destroyed).toBe(true));
});

test('beyond maxConcurrent copies in flight, a copy is dropped and counted, and the client still served', async () => {
  const shadow = await hangingShadow();
  const proxy = await proxyWithShadow(shadow.upstream.url, ', maxConcurrent: 1, timeout: 30s');
  shadow.closeFirst();
  expect(await get(proxy, '/first')).toEqual({ status: 200, body: 'primary /first' });
  await vi.waitFor(() => expect(shadow.held).toHaveLength(1));
  expect(await get(proxy, '/second')).toEqual({ status: 200, body: 'primary /second' });
  expect(await count(proxy, 'ficus_shadow_dropped_total', { route: 'api', reason: 'saturated' })).toBe(1);
  expect(await count(proxy, 'ficus_shadow_comparisons_total', { route: 'api', result: 'skipped' })).toBe(1);

  // Once the first copy is answered, its place is free again.
  shadow.held[0]?.res.writeHead(200, { 'content-type': 'text/plain' }).end('primary /first');
  await vi.waitFor(async () => expect(await count(proxy, 'ficus_shadow_comparisons_total', { result: 'match' })).toBe(1));
  expect(await get(proxy, '/third')).toEqual({ status: 200, body: 'primary /third' });
  await vi.waitFor(() => expect(shadow.held.map((h) => h.req.url)).toEqual(['/first', '/third']));
  expect(await count(proxy, 'ficus_shadow_dropped_total', {})).toBe(1);
});

test('a client that leaves does not abort the copy', async () => {
  let release: () => void = () => undefined;
  const primaryHeld = new Promise<void>((resolve) => (release = resolve));
  const legacy = await startUpstream('legacy', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
    void primaryHeld.then(() => res.end());
  });
  const shadow = await hangingShadow();
  const proxy = await startProxy(shadowRoutesYaml(legacy.url, shadow.upstream.url, ', timeout: 30s'));
  shadow.closeFirst();
  const controller = new AbortController();
  const res = await request(`${proxy.app.proxyUrl}/a`, { signal: controller.signal });
  await vi.waitFor(() => expect(shadow.held).toHaveLength(1));
  controller.abort();
  await res.body.text().catch(() => undefined);
  // The primary's answer was cut short: nothing to compare, but the copy itself goes on.
  await vi.waitFor(async () => expect(await count(proxy, 'ficus_requests_total', { side: 'stable', code: '000' })).toBe(1));
  release();
  expect(shadow.held[0]?.req.socket.destroyed).toBe(false);
  shadow.held[0]?.res.end('late');
  await vi.waitFor(async () => expect(await count(proxy, 'ficus_shadow_comparisons_total', { result: 'skipped' })).toBe(1));
  expect(await count(proxy, 'ficus_requests_total', { side: 'shadow', code: '200' })).toBe(1);
});

/** POSTs go to `legacy`, copied to the `fresh` shadow when it is given (a reload drops it). */
function uploadRoutes(legacy: string, fresh: string | undefined): string {
  return routesYaml(`services:
  legacy: { url: ${legacy} }
${fresh ? `  fresh: { url: ${fresh} }\n` : ''}routes:
  - { name: api, match: { path: / }, to: legacy${fresh ? ', shadow: { to: fresh, methods: [POST], compare: true }' : ''} }
`);
}

test('a copy whose body was still coming when a reload removed the shadow is still sent and compared: its pool waits for it', async () => {
  const legacy = await startUpstream('legacy');
  const fresh = await startUpstream('fresh');
  const yaml = (shadow: boolean) => uploadRoutes(legacy.url, shadow ? fresh.url : undefined);
  const proxy = await startProxy(yaml(true));
  const body = new PassThrough();
  const inflight = request(`${proxy.app.proxyUrl}/upload`, { method: 'POST', body, headers: { 'content-length': '20000' } });
  body.write(Buffer.alloc(10_000, 'a'));
  await vi.waitFor(() => expect(legacy.seen).toHaveLength(1), { timeout: 2_000, interval: 5 });
  // The copy is sent once the whole body is in; the reload retires the shadow's pool before that.
  await proxy.write(yaml(false));
  expect((await proxy.app.reload('signal')).result).toBe('success');
  body.end(Buffer.alloc(10_000, 'b'));
  const res = await inflight;
  expect(res.statusCode).toBe(200);
  await res.body.dump();
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_shadow_comparisons_total')).toBe(1));
  expect(fresh.seen).toHaveLength(1);
  expect(fresh.seen[0]).toMatchObject({ method: 'POST', url: '/upload' });
  expect(await metricSum(proxy.app, 'ficus_shadow_comparisons_total', { result: 'error' })).toBe(0);
  expect(await metricSum(proxy.app, 'ficus_requests_total', { side: 'shadow', code: '200' })).toBe(1);
});

test('a copy holding a blue/green pool across a cutover goes out on that pool, though the shadow is then removed', async () => {
  const legacy = await startUpstream('legacy');
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  const yaml = (active: 'blue' | 'green' | undefined) =>
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
${active ? `  fresh:\n    blue: { url: ${blue.url} }\n    green: { url: ${green.url} }\n    active: ${active}\n` : ''}routes:
  - { name: api, match: { path: / }, to: legacy${active ? ', shadow: { to: fresh, methods: [POST], compare: true }' : ''} }
`);
  const proxy = await startProxy(yaml('blue'));
  const body = new PassThrough();
  const inflight = request(`${proxy.app.proxyUrl}/upload`, { method: 'POST', body, headers: { 'content-length': '20000' } });
  body.write(Buffer.alloc(10_000, 'a'));
  await vi.waitFor(() => expect(legacy.seen).toHaveLength(1), { timeout: 2_000, interval: 5 });
  // The cutover gives blue's endpoint a fresh pool (the held one is retired); then the shadow goes.
  await proxy.write(yaml('green'));
  expect((await proxy.app.reload('signal')).result).toBe('success');
  await proxy.write(yaml(undefined));
  expect((await proxy.app.reload('signal')).result).toBe('success');
  body.end(Buffer.alloc(10_000, 'b'));
  await (await inflight).body.dump();
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_shadow_comparisons_total')).toBe(1));
  expect(blue.seen).toHaveLength(1);
});

test('a copy whose client left with its body unfinished lets the retired pool close', async () => {
  const legacy = await startUpstream('legacy', (_req, res) => res.end('early'));
  const fresh = await startUpstream('fresh');
  const yaml = (shadow: boolean) => uploadRoutes(legacy.url, shadow ? fresh.url : undefined);
  const proxy = await startProxy(yaml(true));
  const pool = proxy.app.store.current.services.get('fresh')?.endpoints[0]?.pool;
  const socket = connect(Number(new URL(proxy.app.proxyUrl).port), '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  // The upstream answers before the body is whole; Node then drops the request, which never ends.
  socket.write(`POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 20000\r\n\r\n${'a'.repeat(10_000)}`);
  await once(socket, 'data');
  await proxy.write(yaml(false));
  expect((await proxy.app.reload('signal')).result).toBe('success');
  socket.destroy();
  await vi.waitFor(() => expect(pool?.closed).toBe(true), { timeout: 2_000, interval: 20 });
});
