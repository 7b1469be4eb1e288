import { once } from 'node:events';
import { connect } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { canaryYaml } from '../helpers/canary.js';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { refusedPort } from '../helpers/upstream.js';
import { acceptKey, closePayload, encodeFrame, OP, portOf, startWsUpstream, wsConnect, type WsClient } from '../helpers/websocket.js';

/**
 * Issue 5 item 4 through the real proxy: WebSocket upgrades go where the same plain request
 * would (route, cohort, toggle, canary side, colour), are tunnelled with hop-by-hop hygiene both
 * ways, counted in metrics and the access log; other upgrades (h2c) are served as plain HTTP.
 */

async function scrape(app: RunningApp): Promise<string> {
  return (await request(`${app.adminUrl}/metrics`)).body.text();
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function open(proxy: TestProxy, path: string, headers: Record<string, string> = {}): Promise<WsClient> {
  return wsConnect(portOf(proxy.app.proxyUrl), path, headers);
}

async function echoes(client: WsClient, text: string): Promise<void> {
  client.send(text);
  const frame = await client.next();
  expect(frame.opcode).toBe(OP.text);
  expect(frame.payload.toString()).toBe(text);
}

async function twoServices() {
  const chat = await startWsUpstream('chat');
  const legacy = await startWsUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`services:
  chat: { url: ${chat.url}/v2 }
  legacy: { url: ${legacy.url} }
routes:
  - { name: tea, match: { path: /tea }, respond: { status: 418, body: "short and stout", headers: { x-pot: brown } } }
  - { name: chat, match: { path: /chat }, to: chat }
  - { name: rooms, match: { path: /rooms }, to: chat, rewrite: { stripPrefix: /rooms, addPrefix: /r } }
  - { name: rest, match: { path: / }, to: legacy }
`),
  );
  return { chat, legacy, proxy };
}

test.each([
  { path: '/chat', served: 'chat', upstreamPath: '/v2/chat' },
  { path: '/chat/room/7?since=3', served: 'chat', upstreamPath: '/v2/chat/room/7?since=3' },
  { path: '/other/socket', served: 'legacy', upstreamPath: '/other/socket' },
  // The matched path is the forwarded path (SPEC §1.2), after rewrite, for upgrades too.
  { path: '/other/%2e%2e/chat/./room', served: 'chat', upstreamPath: '/v2/chat/room' },
  { path: '/rooms/7?x=1', served: 'chat', upstreamPath: '/v2/r/7?x=1' },
])('an upgrade of $path is routed like a plain request to $served', async ({ path, served, upstreamPath }) => {
  const { chat, legacy, proxy } = await twoServices();
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const client = await open(proxy, path, { 'sec-websocket-key': key });
  expect(client.status).toBe(101);
  expect(client.header('x-upstream')).toBe(served);
  // Sec-WebSocket-* are end to end: the key reaches the upstream, whose accept comes back.
  expect(client.header('sec-websocket-accept')).toBe(acceptKey(key));
  expect(client.header('upgrade')).toBe('websocket');
  expect(client.header('connection')).toBe('Upgrade');
  expect(client.header('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  const upstream = served === 'chat' ? chat : legacy;
  expect(upstream.connections.map((c) => c.req.url)).toEqual([upstreamPath]);
  await echoes(client, 'hello');
});

test('messages pass both ways, a 1 MiB one whole, and the upstream may speak first', async () => {
  const { chat, proxy } = await twoServices();
  const arrived = chat.nextConnection();
  const client = await open(proxy, '/chat');
  const upstream = await arrived;
  upstream.send('welcome');
  expect((await client.next()).payload.toString()).toBe('welcome');
  const big = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  client.send(big);
  const back = await client.next(10_000);
  expect(back.opcode).toBe(OP.binary);
  expect(back.payload.equals(big)).toBe(true);
  await echoes(client, 'after the big one');
  expect(upstream.frames.map((f) => f.payload.length)).toEqual([big.length, 'after the big one'.length]);
});

test('frames sent right behind the handshake, in the same write, reach the upstream first', async () => {
  const { chat, proxy } = await twoServices();
  const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat', {}, Buffer.concat([encodeFrame(OP.text, 'eager', true), encodeFrame(OP.text, 'too', true)]));
  expect((await client.next()).payload.toString()).toBe('eager');
  expect((await client.next()).payload.toString()).toBe('too');
  expect(chat.connections[0]?.frames.map((f) => f.payload.toString())).toEqual(['eager', 'too']);
});

test.each([
  { case: 'no route', yaml: 'routes:\n  - { name: chat, match: { path: /chat }, to: chat }\n', path: '/nowhere', status: 404 },
  { case: 'a respond route', yaml: 'routes:\n  - { name: tea, match: { path: /tea }, respond: { status: 418, body: "short and stout" } }\n', path: '/tea', status: 418 },
  { case: 'an encoded NUL in the path', yaml: 'routes:\n  - { name: chat, match: { path: /chat }, to: chat }\n', path: '/chat/%00', status: 400 },
])('$case: the upgrade is answered $status by ficus and the connection closed', async ({ yaml, path, status }) => {
  const chat = await startWsUpstream('chat');
  const proxy = await startProxy(routesYaml(`services:\n  chat: { url: ${chat.url} }\n${yaml}`));
  const client = await open(proxy, path);
  await client.closed;
  expect(client.status).toBe(status);
  expect(client.header('connection')).toBe('close');
  if (status === 418) expect(client.body).toBe('short and stout');
  else expect(JSON.parse(client.body)).toMatchObject({ status, requestId: client.header('x-request-id') });
  expect(chat.connections).toEqual([]);
});

test.each<{ case: string; extra: Record<string, string> }>([
  { case: 'a Content-Length body', extra: { 'content-length': '5' } },
  { case: 'a chunked body', extra: { 'transfer-encoding': 'chunked' } },
])('a WebSocket upgrade with $case is refused with 400, never tunnelled', async ({ extra }) => {
  const { chat, legacy, proxy } = await twoServices();
  const client = await open(proxy, '/chat', extra);
  await client.closed;
  expect(client.status).toBe(400);
  expect([...chat.connections, ...legacy.connections, ...chat.plain, ...legacy.plain]).toEqual([]);
});

test('an upgrade without a sound Host gets 400 and never reaches an upstream', async () => {
  const { chat, proxy } = await twoServices();
  const client = await open(proxy, '/chat', { host: 'a b' });
  await client.closed;
  expect(client.status).toBe(400);
  expect(chat.connections).toEqual([]);
});

test('hop-by-hop fields stop at ficus both ways; Sec-WebSocket-* pass', async () => {
  const chat = await startWsUpstream('chat', { extraHeaders: ['Keep-Alive: timeout=5', 'Proxy-Authenticate: Basic realm="x"', 'Connection: x-internal', 'x-internal: 1', 'Sec-WebSocket-Protocol: chat.v1', 'Trailer: x-t'] });
  const proxy = await startProxy(routesYaml(`services:\n  chat: { url: ${chat.url} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  const client = await open(proxy, '/chat', {
    connection: 'Upgrade, x-secret',
    'x-secret': 'hunter2',
    'keep-alive': 'timeout=9',
    'proxy-authorization': 'Basic eDp5',
    te: 'trailers',
    'sec-websocket-protocol': 'chat.v1, chat.v0',
    'x-ficus-toggles': 'forged',
    'x-forwarded-for': '6.6.6.6',
    forwarded: 'for=6.6.6.6',
    'x-forwarded-proto': 'https',
  });
  expect(client.status).toBe(101);
  const seen = chat.connections[0]?.req.headers ?? {};
  expect(seen['x-secret']).toBeUndefined();
  expect(seen['keep-alive']).toBeUndefined();
  expect(seen['proxy-authorization']).toBeUndefined();
  expect(seen.te).toBeUndefined();
  expect(seen['x-ficus-toggles']).toBeUndefined();
  expect(seen.connection).toBe('Upgrade');
  expect(seen.upgrade).toBe('websocket');
  expect(seen['sec-websocket-protocol']).toBe('chat.v1, chat.v0');
  expect(seen['x-forwarded-for']).toBe('127.0.0.1');
  // A client's own forwarding fields are replaced, as for a plain request (SPEC §1.7).
  expect(seen.forwarded).toMatch(/^for=127\.0\.0\.1;/);
  expect(seen['x-forwarded-proto']).toBe('http');
  const names = client.rawHeaders.map(([n]) => n.toLowerCase());
  for (const name of ['keep-alive', 'proxy-authenticate', 'x-internal', 'trailer']) expect(names).not.toContain(name);
  expect(names.filter((n) => n === 'connection')).toEqual(['connection']);
  expect(client.header('connection')).toBe('Upgrade');
  expect(client.header('sec-websocket-protocol')).toBe('chat.v1');
  await echoes(client, 'clean');
});

test('cohorts and toggles route the upgrade, and the upstream learns the caller\'s toggles', async () => {
  const next = await startWsUpstream('next');
  const legacy = await startWsUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services:
  next: { url: ${next.url} }
  legacy: { url: ${legacy.url} }
cohorts:
  staff: { users: [alice] }
toggles:
  live-chat: { users: [bob] }
routes:
  - { name: chat-staff, match: { path: /chat, cohort: staff }, to: next }
  - { name: chat-toggle, match: { path: /chat, toggle: live-chat }, to: next }
  - { name: rest, match: { path: / }, to: legacy }
`),
  );
  for (const [user, served] of [['alice', 'next'], ['bob', 'next'], ['carol', 'legacy']] as const) {
    const client = await open(proxy, '/chat', { 'x-user-id': user });
    expect(client.header('x-upstream'), user).toBe(served);
  }
  expect(next.connections.map((c) => c.req.headers['x-ficus-toggles'])).toEqual([undefined, 'live-chat']);
});

test('a 50 % canary: each user\'s upgrade lands on the side their plain requests do', async () => {
  const legacy = await startWsUpstream('legacy');
  const v2 = await startWsUpstream('search-v2');
  const proxy = await startProxy(canaryYaml(legacy.url, v2.url, '{ to: search-v2, weight: 50 }'));
  const users = Array.from({ length: 16 }, (_, i) => `user-${i}`);
  const sides = new Set<string>();
  for (const user of users) {
    const plain = await request(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': user } });
    await plain.body.dump();
    const client = await open(proxy, '/search', { 'x-user-id': user });
    expect(client.header('x-upstream'), user).toBe(plain.headers['x-upstream']);
    sides.add(String(plain.headers['x-upstream']));
  }
  // Both sides were exercised, else the comparison proves nothing.
  expect([...sides].sort()).toEqual(['legacy', 'search-v2']);
  const text = await scrape(proxy.app);
  expect(sample(text, 'ficus_requests_total{route="search",service="search-v2",color="",side="canary",code="101"}')).toBeGreaterThan(0);
});

test('refused upgrades count against the canary like failed requests: three 503s in a row eject it', async () => {
  const legacy = await startWsUpstream('legacy');
  const v2 = await startWsUpstream('search-v2', { refuseWith: 503 });
  const proxy = await startProxy(canaryYaml(legacy.url, v2.url, '{ to: search-v2, weight: 100, analysis: { interval: 1h, consecutiveFailures: 3 } }'));
  for (let i = 0; i < 3; i++) expect((await open(proxy, '/search', { 'x-user-id': `user-${i}` })).status).toBe(503);
  expect(sample(await scrape(proxy.app), 'ficus_ejections_total{route="search",reason="consecutive_failures"}')).toBe(1);
  const after = await open(proxy, '/search', { 'x-user-id': 'user-0' });
  expect(after.status).toBe(101);
  expect(after.header('x-upstream')).toBe('legacy');
});

test('blue/green: the upgrade goes to the active colour, with the preview token to the other, and the token stays at ficus', async () => {
  const blue = await startWsUpstream('blue');
  const green = await startWsUpstream('green');
  const proxy = await startProxy(
    routesYaml(`services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: blue
    preview: { header: X-Preview, token: "s3cret-token" }
routes:
  - { name: orders, match: { path: /orders }, to: orders }
`),
  );
  expect((await open(proxy, '/orders')).header('x-upstream')).toBe('blue');
  expect((await open(proxy, '/orders', { 'x-preview': 's3cret-token' })).header('x-upstream')).toBe('green');
  expect((await open(proxy, '/orders', { 'x-preview': 'wrong' })).header('x-upstream')).toBe('blue');
  for (const c of [...blue.connections, ...green.connections]) expect(c.req.headers['x-preview']).toBeUndefined();
  const text = await scrape(proxy.app);
  expect(sample(text, 'ficus_requests_total{route="orders",service="orders",color="blue",side="stable",code="101"}')).toBe(2);
  expect(sample(text, 'ficus_requests_total{route="orders",service="orders",color="green",side="stable",code="101"}')).toBe(1);
});

test('metrics: the upgrade is counted with code 101, the tunnel gauge rises and falls; the access line comes when it ends', async () => {
  const { chat, proxy } = await twoServices();
  const arrived = chat.nextConnection();
  const client = await open(proxy, '/chat', { 'x-user-id': 'alice@example.com' });
  const upstream = await arrived;
  const gauge = 'ficus_websocket_tunnels{route="chat",service="chat"}';
  let text = await scrape(proxy.app);
  expect(sample(text, 'ficus_requests_total{route="chat",service="chat",color="",side="stable",code="101"}')).toBe(1);
  expect(sample(text, gauge)).toBe(1);
  await echoes(client, 'ping');

  // The client closes: its Close reaches the upstream, which answers and hangs up.
  client.send(closePayload(1000, 'bye'), OP.close);
  const answer = await client.next();
  expect(answer.opcode).toBe(OP.close);
  expect(answer.payload.readUInt16BE(0)).toBe(1000);
  await Promise.all([client.closed, upstream.closed]);
  expect(upstream.frames.at(-1)?.opcode).toBe(OP.close);
  await vi.waitFor(async () => expect(sample(await scrape(proxy.app), gauge)).toBe(0), { timeout: 2_000, interval: 10 });
  text = await scrape(proxy.app);
  expect(sample(text, 'ficus_request_duration_seconds_count{route="chat",service="chat",color="",side="stable"}')).toBe(1);

  const line = proxy.logs.find((l) => l.event === 'access' && l.upgrade === 'websocket');
  expect(line).toMatchObject({ route: 'chat', service: 'chat', status: 101, path: '/chat', bytesIn: expect.any(Number), bytesOut: expect.any(Number) });
  expect(line?.bytesIn as number).toBeGreaterThan(4);
  expect(JSON.stringify(proxy.logs)).not.toContain('alice@example.com');
});

test('a client that drops the connection takes the upstream side down and the gauge back to 0', async () => {
  const { chat, proxy } = await twoServices();
  const arrived = chat.nextConnection();
  const client = await open(proxy, '/chat');
  const upstream = await arrived;
  client.socket.destroy();
  await upstream.closed;
  await vi.waitFor(async () => expect(sample(await scrape(proxy.app), 'ficus_websocket_tunnels{route="chat",service="chat"}')).toBe(0), { timeout: 2_000, interval: 10 });
});

test('an upstream that dies closes the client\'s connection', async () => {
  const { chat, proxy } = await twoServices();
  const arrived = chat.nextConnection();
  const client = await open(proxy, '/chat');
  (await arrived).socket.destroy();
  await client.closed;
  await chat.close();
  const again = await open(proxy, '/chat');
  await again.closed;
  expect(again.status).toBe(502);
});

test('an upstream that answers the upgrade with no 101 has its answer relayed, and the connection closes', async () => {
  const chat = await startWsUpstream('chat', { refuseWith: 403 });
  const proxy = await startProxy(routesYaml(`services:\n  chat: { url: ${chat.url} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  const client = await open(proxy, '/chat');
  await client.closed;
  expect(client.status).toBe(403);
  expect(client.header('x-upstream')).toBe('chat');
  expect(client.body).toBe('refused by chat');
  expect(sample(await scrape(proxy.app), 'ficus_requests_total{route="chat",service="chat",color="",side="stable",code="403"}')).toBe(1);
});

test('an endpoint that refuses the connection: 502, counted as an upstream connect error', async () => {
  const dead = await refusedPort();
  const proxy = await startProxy(routesYaml(`services:\n  chat: { url: http://127.0.0.1:${dead} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  const client = await open(proxy, '/chat');
  await client.closed;
  expect(client.status).toBe(502);
  const text = await scrape(proxy.app);
  expect(sample(text, 'ficus_upstream_errors_total{service="chat",kind="connect"}')).toBe(1);
  expect(sample(text, 'ficus_requests_total{route="chat",service="chat",color="",side="stable",code="502"}')).toBe(1);
});

test('an upstream that never answers the upgrade: 504 within timeouts.response', async () => {
  const chat = await startWsUpstream('chat');
  // Accepts the upgrade request and says nothing.
  chat.server.removeAllListeners('upgrade');
  chat.server.on('upgrade', () => undefined);
  const proxy = await startProxy(routesYaml(`services:\n  chat: { url: ${chat.url}, timeouts: { response: 200ms } }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  const started = performance.now();
  const client = await open(proxy, '/chat');
  await client.closed;
  expect(client.status).toBe(504);
  expect(performance.now() - started).toBeLessThan(3_000);
  expect(sample(await scrape(proxy.app), 'ficus_upstream_errors_total{service="chat",kind="timeout"}')).toBe(1);
});

/** Writes `first`, waits for one whole response, then writes `second` on the same connection. */
async function twoOnOneConnection(port: number, first: string, second: string): Promise<string[]> {
  const socket = connect({ port, host: '127.0.0.1' });
  onTestFinished(() => void socket.destroy());
  await once(socket, 'connect');
  let received = '';
  const responses: string[] = [];
  const complete = () => {
    const end = received.indexOf('\r\n\r\n');
    if (end === -1) return false;
    const length = /content-length: (\d+)/i.exec(received.slice(0, end));
    return length !== null && received.length >= end + 4 + Number(length[1]);
  };
  const nextResponse = () =>
    new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        received += chunk.toString('latin1');
        if (!complete()) return;
        socket.off('data', onData);
        const whole = received;
        received = '';
        resolve(whole);
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(received)}`)));
    });
  for (const bytes of [first, second]) {
    const answer = nextResponse();
    socket.write(bytes);
    responses.push(await answer);
  }
  return responses;
}

test('an upgrade pipelined behind a slow request waits for its response, then tunnels', async () => {
  const slow = await startWsUpstream('slow');
  slow.server.removeAllListeners('request');
  slow.server.on('request', (_req: unknown, res: { end(body: string): void }) => void setTimeout(() => res.end('slow-body'), 150));
  const chat = await startWsUpstream('chat');
  const proxy = await startProxy(routesYaml(`services:\n  slow: { url: ${slow.url} }\n  chat: { url: ${chat.url} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n  - { name: rest, match: { path: / }, to: slow }\n`));
  const socket = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1' });
  onTestFinished(() => void socket.destroy());
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  socket.write(`GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`);
  // A frame sent while the upgrade waits must not be lost.
  socket.write(encodeFrame(OP.text, 'early', true));
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  await vi.waitFor(() => expect(received).toContain('early'), { timeout: 2_000, interval: 5 });
  expect(received.indexOf('slow-body')).toBeLessThan(received.indexOf('HTTP/1.1 101'));
  expect(received).toMatch(/^HTTP\/1\.1 200 /);
  expect(chat.connections[0]?.frames.map((f) => f.payload.toString())).toEqual(['early']);
});

test.each([
  { method: 'GET', body: '' },
  { method: 'POST', body: 'hello=world' },
])('an h2c upgrade ($method) is not tunnelled: it is served as plain HTTP/1.1 and the connection stays usable', async ({ method, body }) => {
  const { legacy, proxy } = await twoServices();
  const length = method === 'POST' ? `Content-Length: ${body.length}\r\n` : '';
  const first = `${method} /h2?x=1 HTTP/1.1\r\nHost: shop.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n${length}\r\n${body}`;
  const second = 'GET /after HTTP/1.1\r\nHost: shop.test\r\n\r\n';
  const [one, two] = await twoOnOneConnection(portOf(proxy.app.proxyUrl), first, second);
  expect(one).toMatch(/^HTTP\/1\.1 200 /);
  expect(one).toMatch(/x-upstream: legacy/i);
  expect(one).not.toMatch(/^HTTP\/1\.1 101/m);
  expect(two).toMatch(/^HTTP\/1\.1 200 /);
  expect(legacy.plain.map((r) => [r.method, r.url])).toEqual([
    [method, '/h2?x=1'],
    ['GET', '/after'],
  ]);
  const seen = legacy.plain[0]?.headers ?? {};
  expect(seen.upgrade).toBeUndefined();
  expect(seen['http2-settings']).toBeUndefined();
  expect(String(seen.connection ?? '')).not.toMatch(/upgrade|http2-settings/i);
  if (method === 'POST') expect(seen['content-length']).toBe(String(body.length));
  expect(legacy.connections).toEqual([]);
});
