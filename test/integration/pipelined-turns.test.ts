import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { expect, onTestFinished, test, vi } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { metricSum } from '../helpers/metrics.js';
import { shadowRoutesYaml } from '../helpers/shadow.js';
import { startUpstream } from '../helpers/upstream.js';
import { portOf, startWsUpstream } from '../helpers/websocket.js';

/*
 * Requests pipelined on one connection are forwarded one at a time, each in its turn, as nginx
 * and Envoy forward them: forwarded at once, one client pipelining thousands of requests to a
 * slow route held as many upstream connections (and file descriptors) at the same time.
 */

const config = (url: string) => routesYaml(`services:\n  legacy: { url: ${url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`);

test('forty pipelined requests reach a slow upstream one at a time, and are all answered in order', async () => {
  let inflight = 0;
  let most = 0;
  const upstream = await startUpstream('legacy', (req, res) => {
    most = Math.max(most, ++inflight);
    // A slow upstream: each answer takes a few milliseconds, long enough for others to pile up.
    setTimeout(() => {
      inflight--;
      res.end(`${req.url ?? ''};`);
    }, 3);
  });
  const proxy = await startProxy(config(upstream.url));
  // More than the 32 a connection may have waiting before ficus stops reading it.
  const paths = Array.from({ length: 40 }, (_, i) => `/r${i}`);
  const out = await rawExchange(portOf(proxy.app.proxyUrl), paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''), { until: (r) => r.endsWith('/r39;'), timeoutMs: 10_000 });
  expect(out.statuses).toEqual(paths.map(() => 200));
  expect([...out.response.matchAll(/\/r\d+;/g)].map((m) => m[0])).toEqual(paths.map((p) => `${p};`));
  expect(most).toBe(1);
  expect(upstream.seen).toHaveLength(40);
});

test('a connection pipelining without end is not read further while 32 requests wait, even as its client reads slowly', async () => {
  // Each answer is far larger than the socket buffers: the client's slow reading makes the
  // proxy's socket drain again and again, and Node resumes reading a connection on each drain.
  const body = Buffer.alloc(1024 * 1024, 'x');
  const upstream = await startUpstream('legacy', (_req, res) => res.end(body));
  const proxy = await startProxy(config(upstream.url));
  const client = connect(portOf(proxy.app.proxyUrl), '127.0.0.1');
  onTestFinished(() => void client.destroy());
  await once(client, 'connect');
  // Large heads, so that one read of the connection (64 KiB) holds a few of them only: Node's
  // parser takes every request of a read before pausing.
  client.write(`GET /r HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(4_000)}\r\n\r\n`.repeat(300));
  let received = 0;
  const readThree = new Promise<void>((resolve) => {
    client.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received < 3 * body.length) return;
      client.pause();
      resolve();
    });
  });
  await readThree;
  // One answered, one going out, 32 waiting, and the rest of the read that brought the 32nd in
  // (16 of these heads fit in 64 KiB). Read again at each drain, it held all 300 (210–297 seen).
  const inFlight = await metricSum(proxy.app, 'ficus_requests_in_flight');
  expect(inFlight).toBeLessThanOrEqual(50);
  expect(inFlight).toBeGreaterThan(0);
});

/**
 * An upstream that holds `/slow` until `release`, and answers anything else with its name and
 * the path at once: the request pipelined behind `/slow` waits its turn meanwhile.
 */
async function slowFirst(name: string) {
  const held: ServerResponse[] = [];
  let slowArrived: () => void = () => undefined;
  const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
  const upstream = await startUpstream(name, (req, res) => {
    if (req.url !== '/slow') return void res.end(`${name}${req.url ?? ''}`);
    held.push(res);
    slowArrived();
  });
  return { upstream, arrived, release: () => held[0]?.end(`${name}/slow`) };
}

test('a pipelined POST whose turn comes after a reload moved its service goes to the service as it runs now (it cannot be retried)', async () => {
  const { upstream: a, arrived, release } = await slowFirst('a');
  const b = await startUpstream('b', (req, res) => res.end(`b${req.url ?? ''}`));
  const proxy = await startProxy(config(a.url));
  const pending = rawExchange(portOf(proxy.app.proxyUrl), 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nPOST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi', { until: (r) => r.endsWith('b/next') });
  await arrived;
  await proxy.write(config(b.url));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  release();

  const out = await pending;
  expect(out.statuses).toEqual([200, 200]);
  expect(out.response).toContain('a/slow');
  expect(out.response.endsWith('b/next')).toBe(true);
});

const blueGreen = (blue: string, green: string) =>
  routesYaml(`services:\n  legacy:\n    blue: { url: ${blue} }\n    green: { url: ${green} }\n    active: blue\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`);

test.each([
  { change: 'plain → blue/green', before: (a: string) => config(a), after: (a: string, b: string) => blueGreen(a, b), answers: 'a/next' },
  { change: 'blue/green → plain', before: (a: string, b: string) => blueGreen(a, b), after: (_a: string, b: string) => config(b), answers: 'b/next' },
])('a pipelined request waiting its turn across a reload that changes its service ($change) is answered', async ({ before, after, answers }) => {
  const { upstream: a, arrived, release } = await slowFirst('a');
  const b = await startUpstream('b', (req, res) => res.end(`b${req.url ?? ''}`));
  const proxy = await startProxy(before(a.url, b.url));
  const pending = rawExchange(portOf(proxy.app.proxyUrl), 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nPOST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi', { until: (r) => r.endsWith('/next') });
  await arrived;
  await proxy.write(after(a.url, b.url));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  release();
  const out = await pending;
  expect(out.statuses).toEqual([200, 200]);
  expect(out.response.endsWith(answers)).toBe(true);
});

test('a pipelined request waiting its turn across a reload that removes its service is answered as planned, by the pool the reload retired', async () => {
  const { upstream: a, arrived, release } = await slowFirst('a');
  const b = await startUpstream('b', (req, res) => res.end(`b${req.url ?? ''}`));
  const proxy = await startProxy(config(a.url));
  const pending = rawExchange(portOf(proxy.app.proxyUrl), 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n', { until: (r) => r.endsWith('/next') });
  await arrived;
  await proxy.write(routesYaml(`services:\n  modern: { url: ${b.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: modern }\n`));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  release();
  const out = await pending;
  expect(out.statuses).toEqual([200, 200]);
  expect(out.response.endsWith('a/next')).toBe(true);
});

test('a pipelined request forwarded after a reload moved its shadow service is copied to the service as it runs now', async () => {
  const { upstream: legacy, arrived, release } = await slowFirst('legacy');
  const answer = (_req: IncomingMessage, res: ServerResponse) => void res.end('copy');
  const before = await startUpstream('fresh-before', answer);
  const after = await startUpstream('fresh-after', answer);
  const proxy = await startProxy(shadowRoutesYaml(legacy.url, before.url));
  const pending = rawExchange(portOf(proxy.app.proxyUrl), 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n', { until: (r) => r.endsWith('legacy/second') });
  await arrived;
  await proxy.write(shadowRoutesYaml(legacy.url, after.url));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  release();
  expect((await pending).statuses).toEqual([200, 200]);
  await vi.waitFor(() => expect(after.seen.map((r) => r.url)).toEqual(['/second']));
});

test('an upgrade waiting behind a slow response holds a bounded part of what its client sends meanwhile', async () => {
  const chat = await startWsUpstream('chat');
  const held: ServerResponse[] = [];
  let slowArrived: () => void = () => undefined;
  const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
  chat.server.removeAllListeners('request');
  chat.server.on('request', (_req, res: ServerResponse) => {
    held.push(res);
    slowArrived();
  });
  const proxy = await startProxy(config(chat.url));
  onTestFinished(() => void held[0]?.end('slow'));
  const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1' });
  onTestFinished(() => void client.destroy());
  client.on('error', () => undefined);
  client.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  await arrived;
  // Far more than the socket buffers of both ends hold: only ficus reading it all would take it.
  const accepted = client.write(Buffer.alloc(64 * 1024 * 1024, 0x61));
  expect(accepted).toBe(false);
  const drained = once(client, 'drain').then(() => 'drained' as const);
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), 1_000)));
  expect(await Promise.race([drained, stalled])).toBe('stalled');
  clearTimeout(timer);
});
