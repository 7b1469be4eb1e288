import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

/** A TCP upstream that answers each request head with whatever `reply` writes on the socket. */
async function rawUpstream(reply: (socket: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      reply(socket);
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const address = server.address() as { port: number };
  return `http://127.0.0.1:${address.port}`;
}

async function proxyTo(url: string, extra = '') {
  return startProxy(routesYaml(`services:\n  legacy: { url: ${url}${extra} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
}

async function upstreamErrors(adminUrl: string, kind: string): Promise<number> {
  const text = await (await request(`${adminUrl}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith(`ficus_upstream_errors_total{service="legacy",kind="${kind}"}`));
  return line ? Number(line.split(' ')[1]) : 0;
}

test('a refused connection gives 502 with a JSON body that names no internals', async () => {
  const port = await refusedPort();
  const proxy = await proxyTo(`http://127.0.0.1:${port}`);
  const res = await request(`${proxy.app.proxyUrl}/x`, { method: 'POST', body: 'hello' });
  expect(res.statusCode).toBe(502);
  expect(res.headers['content-type']).toBe('application/json');
  const text = await res.body.text();
  expect(JSON.parse(text)).toMatchObject({ status: 502, error: 'bad gateway' });
  expect(text).not.toContain(String(port));
  expect(text).not.toContain('127.0.0.1');
  expect(text).not.toMatch(/ECONN|refused/i);
  expect(await upstreamErrors(proxy.app.adminUrl, 'connect')).toBe(1);
});

test('no first byte within timeouts.response gives 504', async () => {
  const legacy = await startUpstream('legacy', () => undefined);
  const proxy = await proxyTo(legacy.url, ', timeouts: { response: 300ms }');
  const started = performance.now();
  const res = await request(`${proxy.app.proxyUrl}/slow`);
  expect(res.statusCode).toBe(504);
  expect(await res.body.json()).toMatchObject({ status: 504 });
  expect(performance.now() - started).toBeLessThan(2_000);
  expect(await upstreamErrors(proxy.app.adminUrl, 'timeout')).toBe(1);
});

test.each([
  { name: 'upstream closes before any response', reply: (s: Socket) => s.destroy(), kind: 'reset' },
  { name: 'upstream sends garbage', reply: (s: Socket) => s.end('NOT HTTP AT ALL\r\n\r\n'), kind: 'protocol' },
  { name: 'upstream sends an invalid status line', reply: (s: Socket) => s.end('HTTP/1.1 2000 Nope\r\ncontent-length: 0\r\n\r\n'), kind: 'protocol' },
  {
    name: 'upstream sends both Content-Length and Transfer-Encoding',
    reply: (s: Socket) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
    kind: 'protocol',
  },
  { name: 'upstream sends a header with a bare CR', reply: (s: Socket) => s.end('HTTP/1.1 200 OK\r\nx-bad: a\rb\r\ncontent-length: 0\r\n\r\n'), kind: 'protocol' },
])('$name → 502 ($kind)', async ({ reply, kind }) => {
  const url = await rawUpstream(reply);
  // A POST is not retried, so exactly one failure is counted.
  const proxy = await proxyTo(url);
  const res = await request(`${proxy.app.proxyUrl}/x`, { method: 'POST', body: 'a' });
  expect(res.statusCode).toBe(502);
  expect(await res.body.json()).toMatchObject({ status: 502 });
  expect(await upstreamErrors(proxy.app.adminUrl, kind)).toBe(1);
});

test.each([
  {
    framing: 'content-length',
    reply: (s: Socket) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n');
      s.write(Buffer.alloc(50_000, 97), () => s.destroy());
    },
  },
  {
    framing: 'chunked',
    reply: (s: Socket) => {
      s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
      s.write(`c350\r\n${'a'.repeat(50_000)}\r\n`, () => s.destroy());
    },
  },
])('a reset mid-response ($framing) aborts the client connection', async ({ reply }) => {
  const url = await rawUpstream(reply);
  const proxy = await proxyTo(url);
  const res = await request(`${proxy.app.proxyUrl}/x`);
  expect(res.statusCode).toBe(200);
  await expect(res.body.arrayBuffer()).rejects.toThrow();
  expect(await upstreamErrors(proxy.app.adminUrl, 'reset')).toBe(1);
});

test('a reset mid-response is seen as an error by a raw client too: no terminating chunk, connection closed', async () => {
  const url = await rawUpstream((s) => {
    s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n', () => s.destroy());
  });
  const proxy = await proxyTo(url);
  const { connect } = await import('node:net');
  const socket = connect(Number(new URL(proxy.app.proxyUrl).port), '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.write('GET / HTTP/1.1\r\nhost: a\r\n\r\n');
  await once(socket, 'close');
  expect(received).toMatch(/^HTTP\/1\.1 200/);
  expect(received).toContain('hello');
  expect(received).not.toContain('\r\n0\r\n\r\n');
});

// A body with neither Content-Length nor chunking ends when the upstream closes (RFC 9112 §6.3):
// a clean close (FIN) completes it, a reset (RST, a crashed upstream) cuts it, and undici
// reports both as its end.
test.each([
  { ending: 'closes cleanly (FIN): the response is complete', reset: false },
  { ending: 'resets (RST): the client connection is dropped, no terminating chunk', reset: true },
])('a body that ends with its connection, whose upstream $ending', async ({ reset }) => {
  let upstream: Socket | undefined;
  const url = await rawUpstream((s) => {
    upstream = s;
    s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nfirst-half;');
  });
  const proxy = await proxyTo(url);
  const socket = connect(Number(new URL(proxy.app.proxyUrl).port), '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  let received = '';
  const closed = once(socket, 'close');
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    // Cut only once the first half has gone through: then it is certain the reset cut a body.
    if (received.includes('first-half;') && upstream !== undefined) {
      if (reset) upstream.resetAndDestroy();
      else upstream.end();
      upstream = undefined;
    }
  });
  socket.write('GET / HTTP/1.1\r\nhost: a\r\n\r\n');
  if (reset) {
    await closed;
    expect(received).not.toContain('\r\n0\r\n\r\n');
    expect(await upstreamErrors(proxy.app.adminUrl, 'reset')).toBe(1);
  } else {
    await new Promise<void>((resolve) => socket.on('data', () => received.endsWith('\r\n0\r\n\r\n') && resolve()));
    expect(socket.destroyed).toBe(false);
    expect(await upstreamErrors(proxy.app.adminUrl, 'reset')).toBe(0);
  }
  expect(received).toMatch(/^HTTP\/1\.1 200 /);
  expect(received).toContain('first-half;');
});

test('an upstream that resets in the middle of the upload gives the client a 502, counted as a reset', async () => {
  const legacy = await startUpstream('legacy', (req) => {
    req.once('data', () => req.socket.destroy());
  });
  const proxy = await proxyTo(legacy.url);
  const res = await request(`${proxy.app.proxyUrl}/upload`, { method: 'POST', body: Buffer.alloc(200_000, 97) });
  expect(res.statusCode).toBe(502);
  expect(await res.body.json()).toMatchObject({ status: 502 });
  expect(await upstreamErrors(proxy.app.adminUrl, 'reset')).toBe(1);
});

test.each([
  { framing: 'content-length', reply: 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst part' },
  { framing: 'chunked', reply: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nfirst part\r\n' },
])('an upstream that goes quiet mid-body ($framing) is cut after timeouts.idle, and so is the client', async ({ reply }) => {
  let upstreamClosed: Promise<unknown> | undefined;
  // The upstream keeps its socket open: only ficus's idle timeout can end this exchange.
  const url = await rawUpstream((s) => {
    upstreamClosed = once(s, 'close');
    s.write(reply);
  });
  const proxy = await proxyTo(url, ', timeouts: { idle: 200ms }');
  // A raw client tells a connection ficus closed apart from one we gave up on (the 3 s bound).
  const out = await rawExchange(Number(new URL(proxy.app.proxyUrl).port), 'GET /x HTTP/1.1\r\nhost: a\r\n\r\n', { timeoutMs: 3_000 });
  expect(out.timedOut).toBe(false);
  expect(out.closed).toBe(true);
  expect(out.statuses).toEqual([200]);
  const body = out.response.slice(out.response.indexOf('\r\n\r\n') + 4);
  // What came before the silence was passed on; what would mark the response complete never was.
  expect(body).toContain('first part');
  expect(body).not.toContain('\r\n0\r\n\r\n');
  expect(body.length).toBeLessThan(100);
  expect(await upstreamErrors(proxy.app.adminUrl, 'timeout')).toBe(1);
  // The stalled upstream connection is dropped, not kept for the next request.
  await upstreamClosed;
});

test('timeouts.idle bounds the silence between body chunks, not the whole body', async () => {
  const chunks = 20;
  const legacy = await startUpstream('legacy', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let sent = 0;
    const timer = setInterval(() => {
      res.write(`${sent}.`);
      if (++sent === chunks) {
        clearInterval(timer);
        res.end();
      }
    }, 50);
    res.on('close', () => clearInterval(timer));
  });
  // The body takes about a second, several times the idle timeout; no gap comes near it.
  const proxy = await proxyTo(legacy.url, ', timeouts: { idle: 300ms }');
  const started = performance.now();
  const res = await request(`${proxy.app.proxyUrl}/trickle`);
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe(Array.from({ length: chunks }, (_, i) => `${i}.`).join(''));
  expect(performance.now() - started).toBeGreaterThan(3 * 300);
  expect(await upstreamErrors(proxy.app.adminUrl, 'timeout')).toBe(0);
});

/**
 * An endpoint whose TCP handshake never completes. The listener lives on a worker thread that
 * blocks at once, so nothing ever accepts; with backlog 1 Linux queues two handshakes, and once
 * its accept queue is full it drops further SYNs instead of refusing them (no RST), so the next
 * connect just hangs.
 */
async function unansweredPort(): Promise<number> {
  const release = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const server = require('node:net').createServer();
     server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
       parentPort.postMessage(server.address().port);
       Atomics.wait(workerData, 0, 0);
       server.close();
       parentPort.close();
     });`,
    { eval: true, workerData: release },
  );
  const [port] = (await once(worker, 'message')) as [number];
  const fillers = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
  onTestFinished(async () => {
    for (const socket of fillers) socket.destroy();
    Atomics.store(release, 0, 1);
    Atomics.notify(release, 0);
    await worker.terminate();
  });
  await Promise.all(fillers.map((socket) => once(socket, 'connect')));
  return port;
}

test.skipIf(process.platform !== 'linux')('a handshake that never completes gives 504 after timeouts.connect, counted as a timeout', async () => {
  const port = await unansweredPort();
  const proxy = await proxyTo(`http://127.0.0.1:${port}`, ', timeouts: { connect: 300ms }');
  const started = performance.now();
  const res = await request(`${proxy.app.proxyUrl}/x`);
  expect(res.statusCode).toBe(504);
  expect(await res.body.json()).toMatchObject({ status: 504 });
  // undici's coarse timers fire a 300 ms timeout after about a second; its own default, which
  // this would be without the setting, is 10 s. The bound leaves room for a loaded CI machine.
  expect(performance.now() - started).toBeLessThan(5_000);
  expect(await upstreamErrors(proxy.app.adminUrl, 'timeout')).toBe(1);
});
