import { once } from 'node:events';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { metricBy, metricSum } from '../helpers/metrics.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream } from '../helpers/upstream.js';

const LIMITS = 'limits: { headerTimeout: 300ms, maxHeaderBytes: 4096, maxHeaderCount: 20, maxBodyBytes: 1000 }\n';

async function limitedProxy() {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`${LIMITS}services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  return { legacy, proxy, port: Number(new URL(proxy.app.proxyUrl).port) };
}

/** Writes `text` on a fresh connection and returns everything the proxy sent until it closed. */
async function exchange(port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  socket.write(text);
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

function statusOf(response: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
}

const manyHeaders = Array.from({ length: 30 }, (_, i) => `x-h${i}: ${i}\r\n`).join('');

test.each([
  { name: 'header section over maxHeaderBytes', text: `GET / HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(5000)}\r\n\r\n`, status: 431 },
  { name: 'more headers than maxHeaderCount', text: `GET / HTTP/1.1\r\nhost: a\r\n${manyHeaders}connection: close\r\n\r\n`, status: 431 },
  { name: 'malformed escape in the target', text: 'GET /a%zz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', status: 400 },
  { name: 'encoded backslash in the target', text: 'GET /a%5c..%5cadmin HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', status: 400 },
  { name: 'target that is neither a path nor a URL', text: 'GET a/b HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', status: 400 },
  { name: 'an absolute-form authority that is no host[:port]', text: 'GET http://a:b:c/p HTTP/1.1\r\nhost: good\r\nconnection: close\r\n\r\n', status: 400 },
  { name: 'an absolute-form authority with a stray bracket', text: 'GET http://x]y/p HTTP/1.1\r\nhost: good\r\nconnection: close\r\n\r\n', status: 400 },
  { name: 'HTTP/1.1 without Host', text: 'GET / HTTP/1.1\r\nconnection: close\r\n\r\n', status: 400 },
  { name: 'TRACE', text: 'TRACE / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', status: 405 },
  { name: 'CONNECT', text: 'CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n', status: 405 },
  { name: 'Content-Length over maxBodyBytes', text: 'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1001\r\nconnection: close\r\n\r\n', status: 413 },
  { name: 'Content-Length with Transfer-Encoding', text: 'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', status: 400 },
  { name: 'two differing Content-Lengths', text: 'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd', status: 400 },
  { name: 'two equal Content-Lengths', text: 'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc', status: 400 },
  { name: 'malformed chunk size', text: 'POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', status: 400 },
])('$name → $status, never forwarded', async ({ text, status }) => {
  const { legacy, port } = await limitedProxy();
  const response = await exchange(port, text);
  expect(statusOf(response)).toBe(status);
  expect(legacy.seen).toHaveLength(0);
  // ficus's own answer, whichever layer refused: JSON naming the request id it also sends as a field.
  const [head = '', body = ''] = response.split('\r\n\r\n');
  const requestId = /\r\nx-request-id: ([^\r]+)/i.exec(head)?.[1];
  expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
  expect(JSON.parse(body)).toEqual({ error: expect.any(String), status, requestId });
});

test('requests inside the limits pass', async () => {
  const { legacy, proxy } = await limitedProxy();
  const res = await request(`${proxy.app.proxyUrl}/ok`, { method: 'POST', body: 'x'.repeat(1000), headers: { 'x-small': 'a'.repeat(2000) } });
  expect(res.statusCode).toBe(200);
  expect(await res.body.json()).toMatchObject({ bytes: 1000 });
  expect(legacy.seen).toHaveLength(1);
});

test('a chunked body that grows past maxBodyBytes is cut off with 413', async () => {
  const { proxy } = await limitedProxy();
  const port = Number(new URL(proxy.app.proxyUrl).port);
  const chunk = 'a'.repeat(600);
  const body = `${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(2) + '0\r\n\r\n';
  const response = await exchange(port, `POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n${body}`);
  expect(statusOf(response)).toBe(413);
  // The client's excess is not the upstream's failure.
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).not.toMatch(/^ficus_upstream_errors_total\{/m);
});

test('a slowloris connection that never finishes its headers is closed after headerTimeout', async () => {
  const { legacy, port } = await limitedProxy();
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  socket.resume();
  await once(socket, 'connect');
  const started = performance.now();
  socket.write('GET / HTTP/1.1\r\nhost: a\r\nx-slow: 1\r\n');
  await once(socket, 'close');
  const elapsed = performance.now() - started;
  expect(elapsed).toBeGreaterThanOrEqual(250);
  expect(elapsed).toBeLessThan(2_000);
  expect(legacy.seen).toHaveLength(0);
});

test('a request body stalled past limits.bodyTimeout gets 408, and its upstream request is let go', async () => {
  let upstreamCut: Promise<unknown> | undefined;
  const legacy = await startUpstream('legacy', (req, res) => {
    upstreamCut = new Promise((resolve) => req.on('close', resolve));
    // ficus aborting the upload reads here as an aborted request.
    req.on('error', () => undefined);
    req.resume();
    req.on('end', () => res.end('whole'));
  });
  const proxy = await startProxy(routesYaml(`limits: { bodyTimeout: 300ms }\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const port = Number(new URL(proxy.app.proxyUrl).port);
  const started = performance.now();
  // Ten bytes of a hundred, then nothing: the connection stays open, so only the timer can end it.
  const response = await exchange(port, `POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n${'x'.repeat(10)}`);
  expect(statusOf(response)).toBe(408);
  expect(performance.now() - started).toBeLessThan(5_000);
  await upstreamCut;
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  // The client's stall is not the endpoint's failure.
  expect(metrics).not.toMatch(/^ficus_upstream_errors_total\{/m);
});

test('a body that keeps coming, however slowly, is never cut by limits.bodyTimeout', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`limits: { bodyTimeout: 300ms }\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  async function* trickle() {
    for (let i = 0; i < 12; i++) {
      yield 'x'.repeat(10);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const started = performance.now();
  const res = await request(`${proxy.app.proxyUrl}/upload`, { method: 'POST', body: Readable.from(trickle()) });
  expect(res.statusCode).toBe(200);
  expect(await res.body.json()).toMatchObject({ bytes: 120 });
  // Longer than the timeout in all, so it is the gaps that are timed, not the whole.
  expect(performance.now() - started).toBeGreaterThan(3 * 300);
});

/** An upstream streaming `total` bytes in 64 KiB writes, with backpressure; `cut` resolves when ficus lets its request go. */
async function streamingUpstream(total: number) {
  let cut: Promise<unknown> | undefined;
  const legacy = await startUpstream('legacy', (req, res) => {
    cut = once(res, 'close');
    res.on('error', () => undefined);
    res.writeHead(200, { 'content-length': total });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    const more = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  });
  return { legacy, cut: () => cut };
}

test('a client that reads none of its response for limits.sendTimeout loses its connection, and the upstream request is let go', async () => {
  const { legacy, cut } = await streamingUpstream(64 * 1024 * 1024);
  const proxy = await startProxy(routesYaml(`limits: { sendTimeout: 300ms }\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const socket = connect(Number(new URL(proxy.app.proxyUrl).port), '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  socket.write('GET /big HTTP/1.1\r\nhost: a\r\n\r\n');
  // Reads the head, then nothing more: the socket buffers fill and ficus's writes are refused.
  await once(socket, 'data');
  socket.pause();
  const started = performance.now();
  await cut();
  expect(performance.now() - started).toBeLessThan(5_000);
  // What was already on its way is read; then the connection ends, short of the 64 MiB.
  let received = 0;
  socket.on('data', (chunk: Buffer) => (received += chunk.length));
  socket.resume();
  await once(socket, 'close');
  expect(received).toBeLessThan(64 * 1024 * 1024);
  const access = proxy.logs.find((line) => line.event === 'access');
  expect(access).toMatchObject({ status: 0, fault: 'client_error' });
  // The client's stall is not the endpoint's failure.
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).not.toMatch(/^ficus_upstream_errors_total\{/m);
});

test('a response the client keeps reading, however slowly, is never cut by limits.sendTimeout', async () => {
  const total = 16 * 1024 * 1024;
  const { legacy } = await streamingUpstream(total);
  // The timeout is ten pauses long: a write waits for the kernel to wake it, which a busy
  // machine delays by some hundred milliseconds (nginx's send_timeout waits on the same).
  const proxy = await startProxy(routesYaml(`limits: { sendTimeout: 1s }\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const res = await request(`${proxy.app.proxyUrl}/big`);
  expect(res.statusCode).toBe(200);
  const started = performance.now();
  let read = 0;
  // A pause after every 1 MiB: every write waits, none for a second, the whole for longer.
  let next = 1024 * 1024;
  for await (const chunk of res.body) {
    read += (chunk as Buffer).length;
    if (read >= next) {
      next += 1024 * 1024;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  expect(read).toBe(total);
  expect(performance.now() - started).toBeGreaterThan(1_500);
});

test('a pipelined response waiting its turn behind a slow one is not timed: the client is reading the first', async () => {
  const big = 4 * 1024 * 1024;
  const legacy = await startUpstream('legacy', (req, res) => {
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const timer = setInterval(() => {
        res.write('tick\n');
        if (++n === 8) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
      return;
    }
    res.writeHead(200, { 'content-length': big });
    res.end(Buffer.alloc(big, 'y'));
  });
  const proxy = await startProxy(routesYaml(`limits: { sendTimeout: 300ms }\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const socket = connect(Number(new URL(proxy.app.proxyUrl).port), '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  let received = 0;
  socket.on('data', (chunk: Buffer) => (received += chunk.length));
  socket.write('GET /slow HTTP/1.1\r\nhost: a\r\n\r\nGET /big HTTP/1.1\r\nhost: a\r\n\r\n');
  await vi.waitFor(() => expect(proxy.logs.filter((line) => line.event === 'access')).toHaveLength(2), { timeout: 5_000, interval: 20 });
  expect(proxy.logs.filter((line) => line.event === 'access').map((line) => line.status)).toEqual([200, 200]);
  expect(received).toBeGreaterThan(big);
});

/** Everything the upstream ran, once a request sent afterwards on a new connection has arrived: anything forwarded before it was dispatched first. */
async function ranUpstream(legacy: Awaited<ReturnType<typeof startUpstream>>, proxyUrl: string): Promise<string[]> {
  await (await request(`${proxyUrl}/after`)).body.dump();
  return legacy.seen.map((s) => `${s.method} ${s.url}`);
}

test('a request pipelined behind a 413 is never forwarded: the connection is closing, and its answer could never reach the client', async () => {
  const { legacy, proxy, port } = await limitedProxy();
  // A pooled upstream connection is ready: a request forwarded by mistake would be sent at once.
  await (await request(`${proxy.app.proxyUrl}/warm`)).body.dump();
  const response = await exchange(port, `POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n${'x'.repeat(1001)}POST /charge HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi`);
  expect([...response.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1])).toEqual(['413']);
  expect(await ranUpstream(legacy, proxy.app.proxyUrl)).toEqual(['GET /warm', 'GET /after']);
});

test('bytes after a request that said Connection: close do not overtake its answer with a 400, and are not served', async () => {
  const { legacy, proxy, port } = await limitedProxy();
  await (await request(`${proxy.app.proxyUrl}/warm`)).body.dump();
  const response = await exchange(port, 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nPOST /charge HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi');
  expect([...response.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1])).toEqual(['200']);
  expect(await ranUpstream(legacy, proxy.app.proxyUrl)).toEqual(['GET /warm', 'GET /x', 'GET /after']);
  expect(await metricSum(proxy.app, 'ficus_edge_refusals_total')).toBe(0);
});

test('a head with more fields than maxHeaderCount is an edge refusal, as one over maxHeaderBytes: counted there, not as a routed request, and no access line', async () => {
  const { proxy, port } = await limitedProxy();
  const response = await exchange(port, `GET / HTTP/1.1\r\nhost: a\r\n${manyHeaders}\r\n`);
  expect(statusOf(response)).toBe(431);
  await vi.waitFor(async () => expect(await metricBy(proxy.app, 'ficus_edge_refusals_total', 'code')).toEqual({ 431: 1 }));
  expect(await metricSum(proxy.app, 'ficus_requests_total')).toBe(0);
  expect(proxy.logs.filter((l) => l.event === 'access')).toEqual([]);
});

test('a request pipelined behind a streaming response, then malformed bytes: it is answered, or never forwarded, and never left in flight', async () => {
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    if (req.url !== '/slow') return void res.end('charged');
    res.writeHead(200, { 'content-length': '4' });
    res.write('sl');
    // The rest comes once the client has sent what follows.
    setTimeout(() => res.end('ow'), 200);
  });
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const client = connect(Number(new URL(proxy.app.proxyUrl).port), '127.0.0.1');
  onTestFinished(() => void client.destroy());
  let response = '';
  client.on('data', (chunk: Buffer) => (response += chunk.toString('latin1')));
  await once(client, 'connect');
  client.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
  await vi.waitFor(() => expect(response).toContain('sl'));
  client.write('POST /charge HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiBLAH BLAH\r\n\r\n');
  await once(client, 'close');
  const answered = [...response.matchAll(/HTTP\/1\.1 (\d{3}) /g)].length;
  const forwarded = legacy.seen.filter((r) => r.url === '/charge').length;
  expect(answered).toBe(1 + forwarded);
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_requests_in_flight')).toBe(0));
  expect(await metricSum(proxy.app, 'ficus_edge_refusals_total')).toBe(0);
});

test('a request pipelined behind a slow response, whose own chunked body is malformed, gets 400 in its turn and never reaches the upstream', async () => {
  let release: () => void = () => undefined;
  const slowHeld = new Promise<void>((resolve) => (release = resolve));
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    if (req.url !== '/slow') return void res.end('ok');
    void slowHeld.then(() => res.end('slow'));
  });
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const pending = rawExchange(Number(new URL(proxy.app.proxyUrl).port), 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\nPOST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n', { timeoutMs: 5_000 });
  await vi.waitFor(() => expect(legacy.seen.map((s) => s.url)).toEqual(['/slow']));
  // The malformed chunk has been read (the parser failed on it) before the slow answer ends.
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_requests_in_flight')).toBe(2));
  release();
  const out = await pending;
  expect(out.statuses).toEqual([200, 400]);
  expect(out.closed).toBe(true);
  expect(legacy.seen.map((s) => s.url)).toEqual(['/slow']);
});

test('a reload that lowers limits.maxHeaderCount applies to the next request, without a restart', async () => {
  const { legacy, proxy, port } = await limitedProxy();
  const fifteen = Array.from({ length: 14 }, (_, i) => `x-h${i}: ${i}\r\n`).join('');
  const head = `GET / HTTP/1.1\r\nhost: a\r\n${fifteen}connection: close\r\n\r\n`;
  expect(statusOf(await exchange(port, head))).toBe(200);
  await proxy.write(routesYaml(`${LIMITS.replace('maxHeaderCount: 20', 'maxHeaderCount: 10')}services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(statusOf(await exchange(port, head))).toBe(431);
});
