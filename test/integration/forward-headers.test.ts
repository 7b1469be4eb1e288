import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

// RFC 9562: ficus generates version 8 ids (see src/proxy/request-id.ts).
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function proxyTo(upstream: Upstream, extra = '', route = '') {
  const proxy = await startProxy(
    routesYaml(`${extra}services:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy${route} }\n`),
  );
  return { proxy, port: Number(new URL(proxy.app.proxyUrl).port) };
}

/** Sends `text` on a fresh connection and returns all the proxy sent back until it closed. */
async function rawExchange(port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.write(text);
  await once(socket, 'close');
  return received;
}

/** Response header lines (lower-cased names) of a raw HTTP/1.1 response. */
function headerLines(response: string): [string, string][] {
  const head = response.slice(0, response.indexOf('\r\n\r\n'));
  return head
    .split('\r\n')
    .slice(1)
    .map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
    });
}

test('hop-by-hop request headers, those Connection names, and client-sent x-ficus-* never reach the upstream', async () => {
  const legacy = await startUpstream('legacy');
  const { port } = await proxyTo(legacy);
  await rawExchange(
    port,
    [
      'GET /h HTTP/1.1',
      'Host: shop.example:8080',
      'Connection: close, X-Secret-Hop',
      'X-Secret-Hop: 1',
      'Keep-Alive: timeout=5',
      'Proxy-Authorization: Basic YTpi',
      'Proxy-Connection: keep-alive',
      'Proxy-Anything: 1',
      'TE: trailers',
      'Trailer: x-t',
      'Upgrade: h2c',
      'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA',
      'Expect: 100-continue',
      'X-Ficus-Toggles: admin',
      'X-Ficus-Preview: 1',
      'X-Kept: yes',
      '',
      '',
    ].join('\r\n'),
  );
  expect(legacy.seen).toHaveLength(1);
  const names = (legacy.seen[0]?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  for (const dropped of ['x-secret-hop', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'proxy-anything', 'te', 'trailer', 'upgrade', 'http2-settings', 'expect', 'x-ficus-toggles', 'x-ficus-preview']) {
    expect(names).not.toContain(dropped);
  }
  expect(legacy.seen[0]?.headers).toMatchObject({ 'x-kept': 'yes', host: 'shop.example:8080' });
  // undici sets its own Connection for the pooled upstream connection, never the client's.
  expect(legacy.seen[0]?.headers.connection ?? 'keep-alive').toBe('keep-alive');
});

test('underscored spellings of ficus\'s own fields never reach the upstream (CGI, WSGI and Rack read _ as -); other underscored fields do', async () => {
  const legacy = await startUpstream('legacy');
  const { port } = await proxyTo(legacy);
  await rawExchange(
    port,
    [
      'GET /h HTTP/1.1',
      'Host: shop.example',
      'Connection: close',
      'X_Ficus_Toggles: beta',
      'x_ficus_shadow: 1',
      'X_Forwarded_For: 6.6.6.6',
      'X_Forwarded_Host: evil.example',
      'x_forwarded_proto: https',
      'X_Request_Id: forged',
      'Proxy_Authorization: Basic YTpi',
      'X_App_Flag: kept',
      '',
      '',
    ].join('\r\n'),
  );
  expect(legacy.seen).toHaveLength(1);
  const names = (legacy.seen[0]?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  expect(names.filter((name) => name.includes('_'))).toEqual(['x_app_flag']);
  expect(legacy.seen[0]?.headers['x-forwarded-for']).toBe('127.0.0.1');
});

test('hop-by-hop response headers are stripped and the framing is redone', async () => {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('data', () =>
      socket.end(
        [
          'HTTP/1.1 200 OK',
          'Connection: X-Up-Hop',
          'X-Up-Hop: 1',
          'Keep-Alive: timeout=5',
          'Proxy-Authenticate: Basic',
          'Proxy-Connection: keep-alive',
          'Trailer: x-t',
          'Upgrade: h2c',
          'Date: Mon, 01 Jan 2024 00:00:00 GMT',
          'X-Kept: yes',
          'Transfer-Encoding: chunked',
          '',
          '5',
          'hello',
          '0',
          'x-t: 1',
          '',
          '',
        ].join('\r\n'),
      ),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const { port } = await proxyTo({ url } as Upstream);
  const response = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  const lines = headerLines(response);
  const names = lines.map(([name]) => name);
  for (const dropped of ['x-up-hop', 'keep-alive', 'proxy-authenticate', 'proxy-connection', 'trailer', 'upgrade']) expect(names).not.toContain(dropped);
  expect(lines.filter(([name]) => name === 'transfer-encoding')).toEqual([['transfer-encoding', 'chunked']]);
  expect(lines.filter(([name]) => name === 'date')).toEqual([['date', 'Mon, 01 Jan 2024 00:00:00 GMT']]);
  expect(lines.filter(([name]) => name === 'connection')).toEqual([['connection', 'close']]);
  expect(names).toContain('x-kept');
  expect(response.slice(response.indexOf('\r\n\r\n') + 4)).toBe('5\r\nhello\r\n0\r\n\r\n');
});

const clientForwarding = {
  'x-forwarded-for': '203.0.113.7',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'public.example',
  forwarded: 'for=203.0.113.7;proto=https',
};

test.each([
  {
    name: 'an untrusted peer: its forwarding headers are replaced',
    extra: '',
    sent: clientForwarding,
    want: {
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'shop.example:8080',
      forwarded: 'for=127.0.0.1;proto=http;host="shop.example:8080"',
    },
  },
  {
    name: 'a trusted proxy: its forwarding headers are kept and ficus appends its hop',
    extra: 'trustedProxies: [127.0.0.0/8]\n',
    sent: clientForwarding,
    want: {
      'x-forwarded-for': '203.0.113.7, 127.0.0.1',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'public.example',
      forwarded: 'for=203.0.113.7;proto=https, for=127.0.0.1;proto=http;host="shop.example:8080"',
    },
  },
  {
    name: 'a trusted proxy that sent none: ficus sets them',
    extra: 'trustedProxies: [127.0.0.1/32]\n',
    sent: {},
    want: {
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'shop.example:8080',
      forwarded: 'for=127.0.0.1;proto=http;host="shop.example:8080"',
    },
  },
  {
    name: 'a peer outside trustedProxies: replaced',
    extra: 'trustedProxies: [10.0.0.0/8]\n',
    sent: clientForwarding,
    want: {
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'shop.example:8080',
      forwarded: 'for=127.0.0.1;proto=http;host="shop.example:8080"',
    },
  },
])('X-Forwarded-* and Forwarded from $name', async ({ extra, sent, want }) => {
  const legacy = await startUpstream('legacy');
  const { proxy } = await proxyTo(legacy, extra);
  const res = await request(`${proxy.app.proxyUrl}/f`, { headers: { host: 'shop.example:8080', ...sent } });
  expect(res.statusCode).toBe(200);
  await res.body.dump();
  expect(legacy.seen[0]?.headers).toMatchObject(want);
});

test.each([
  { name: 'a valid one is kept', sent: 'req-42.abc:def/1', kept: true },
  { name: 'one with a space is replaced', sent: 'has space', kept: false },
  { name: 'one with markup is replaced', sent: '<script>', kept: false },
  { name: 'an over-long one is replaced', sent: 'a'.repeat(201), kept: false },
])('x-request-id: $name', async ({ sent, kept }) => {
  const legacy = await startUpstream('legacy');
  const { proxy } = await proxyTo(legacy);
  await (await request(`${proxy.app.proxyUrl}/id`, { headers: { 'x-request-id': sent } })).body.dump();
  const forwarded = legacy.seen[0]?.headers['x-request-id'];
  if (kept) expect(forwarded).toBe(sent);
  else expect(forwarded).toMatch(UUID);
});

test('x-request-id is generated when absent, unique per request, and quoted in error bodies', async () => {
  const legacy = await startUpstream('legacy');
  const { proxy } = await proxyTo(legacy);
  await Promise.all(Array.from({ length: 40 }, async () => (await request(`${proxy.app.proxyUrl}/id`)).body.dump()));
  const ids = legacy.seen.map((s) => s.headers['x-request-id']);
  expect(ids).toHaveLength(40);
  for (const id of ids) expect(id).toMatch(UUID);
  expect(new Set(ids).size).toBe(40);

  await legacy.close();
  const res = await request(`${proxy.app.proxyUrl}/id`, { headers: { 'x-request-id': 'trace-me' } });
  expect(res.statusCode).toBe(502);
  expect(res.headers['x-request-id']).toBe('trace-me');
  expect(await res.body.json()).toMatchObject({ requestId: 'trace-me' });
});

test.each([
  { name: 'Host is forwarded as the client sent it', route: '', target: '/p', host: 'Shop.Example.com:8443', upstreamHost: 'Shop.Example.com:8443', xfh: 'Shop.Example.com:8443' },
  { name: 'rewrite.host replaces it', route: ', rewrite: { host: internal.svc }', target: '/p', host: 'shop.example.com', upstreamHost: 'internal.svc', xfh: 'shop.example.com' },
  { name: 'an absolute-form target names the host', route: '', target: 'http://abs.example:81/p', host: 'other.example', upstreamHost: 'abs.example:81', xfh: 'abs.example:81' },
])('$name', async ({ route, target, host, upstreamHost, xfh }) => {
  const legacy = await startUpstream('legacy');
  const { port } = await proxyTo(legacy, '', route);
  await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  expect(legacy.seen[0]?.url).toBe('/p');
  expect(legacy.seen[0]?.headers.host).toBe(upstreamHost);
  expect(legacy.seen[0]?.headers['x-forwarded-host']).toBe(xfh);
});

test('a headers.host condition reads the absolute-form authority, the Host the upstream is sent, not the Host line it replaced', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: admin-host, match: { headers: { host: admin.example.com } }, respond: { status: 403, body: no } }\n  - { name: rest, match: { path: / }, to: legacy }\n`),
  );
  const port = Number(new URL(proxy.app.proxyUrl).port);
  const through = await rawExchange(port, 'GET http://admin.example.com/x HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n');
  expect(through).toMatch(/^HTTP\/1\.1 403 /);
  const other = await rawExchange(port, 'GET http://www.example.com/x HTTP/1.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n');
  expect(other).toMatch(/^HTTP\/1\.1 200 /);
  expect(legacy.seen.map((s) => s.headers.host)).toEqual(['www.example.com']);
});
