import { once } from 'node:events';
import { connect } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

async function setup() {
  const legacy = await startUpstream('legacy', (req, res) => {
    if (req.url?.endsWith('/204')) return void res.writeHead(204, { 'x-from': 'upstream' }).end();
    if (req.url?.endsWith('/304')) return void res.writeHead(304, { etag: '"v1"' }).end();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 11 });
    res.end(req.method === 'HEAD' ? undefined : 'hello world');
  });
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
routes:
  - name: paused
    match: { path: /invoices }
    respond: { status: 503, body: "Invoices are paused", headers: { retry-after: "60" } }
  - name: teapot-json
    match: { exact: /tea }
    respond: { status: 418, body: '{"short":"stout"}', headers: { Content-Type: application/json } }
  - name: gone
    match: { exact: /gone }
    respond: { status: 204 }
  - name: app
    match: { path: /app }
    to: legacy
`),
  );
  return { legacy, proxy, port: Number(new URL(proxy.app.proxyUrl).port) };
}

/** Sends several requests on one connection (the last with Connection: close) and returns all bytes. */
async function onOneConnection(port: number, requests: string[]): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.write(requests.join(''));
  await once(socket, 'close');
  return received;
}

test('no matching route: 404 from ficus, a JSON body that names no route, service or upstream', async () => {
  const { legacy, proxy } = await setup();
  const res = await request(`${proxy.app.proxyUrl}/nowhere?x=1`);
  expect(res.statusCode).toBe(404);
  expect(res.headers['content-type']).toBe('application/json');
  const text = await res.body.text();
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(['error', 'requestId', 'status']);
  expect(body).toMatchObject({ status: 404, error: 'no route' });
  for (const internal of [String(legacy.port), '127.0.0.1', 'legacy', 'paused', 'app']) expect(text).not.toContain(internal);
  expect(legacy.seen).toHaveLength(0);
});

test.each([
  { path: '/invoices/42', status: 503, body: 'Invoices are paused', headers: { 'retry-after': '60', 'content-type': 'text/plain; charset=utf-8', 'content-length': '19' } },
  { path: '/tea', status: 418, body: '{"short":"stout"}', headers: { 'content-type': 'application/json', 'content-length': '17' } },
])('a respond route answers $path with its status, body and headers', async ({ path, status, body, headers }) => {
  const { legacy, proxy } = await setup();
  for (let i = 0; i < 2; i++) {
    const res = await request(`${proxy.app.proxyUrl}${path}`);
    expect(res.statusCode).toBe(status);
    expect(res.headers).toMatchObject(headers);
    expect(await res.body.text()).toBe(body);
  }
  expect(legacy.seen).toHaveLength(0);
});

test('a respond route with 204 sends neither a body nor a Content-Length', async () => {
  const { port } = await setup();
  const received = await onOneConnection(port, ['GET /gone HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n']);
  expect(received).toMatch(/^HTTP\/1\.1 204 /);
  expect(received.toLowerCase()).not.toContain('content-length');
  expect(received.endsWith('\r\n\r\n')).toBe(true);
});

test.each([
  { name: 'HEAD on a respond route', first: 'HEAD /invoices HTTP/1.1\r\nHost: a\r\n\r\n', status: 503, length: '19' },
  { name: 'HEAD to the upstream', first: 'HEAD /app/x HTTP/1.1\r\nHost: a\r\n\r\n', status: 200, length: '11' },
  { name: 'a 204 from the upstream', first: 'GET /app/204 HTTP/1.1\r\nHost: a\r\n\r\n', status: 204, length: undefined },
  { name: 'a 304 from the upstream', first: 'GET /app/304 HTTP/1.1\r\nHost: a\r\nIf-None-Match: "v1"\r\n\r\n', status: 304, length: undefined },
])('$name carries no body, and the connection goes on with the next response', async ({ first, status, length }) => {
  const { port } = await setup();
  const received = await onOneConnection(port, [first, 'GET /app/next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n']);
  const end = received.indexOf('\r\n\r\n') + 4;
  const head = received.slice(0, end);
  expect(head).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  if (length === undefined) expect(head.toLowerCase()).not.toMatch(/\r\ncontent-length: [1-9]/);
  else expect(head.toLowerCase()).toContain(`\r\ncontent-length: ${length}\r\n`);
  // Not one byte of body between the first head and the second response.
  expect(received.slice(end)).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  expect(received.endsWith('\r\n\r\nhello world')).toBe(true);
});
