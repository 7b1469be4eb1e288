import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
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
