import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { expect, onTestFinished, test, vi } from 'vitest';
import { metricSum } from '../helpers/metrics.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { listenForTest, refusedPort, startUpstream } from '../helpers/upstream.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { acceptKey, answer101, closePayload, heldWsUpstream, OP, portOf, startWsUpstream, wsConnect } from '../helpers/websocket.js';

/**
 * Endings of a WebSocket tunnel that the main tests do not reach (a reload while the upstream
 * has not answered yet, a client hanging up then, a drain while a refusal is still streaming),
 * what a keep-alive connection of h2c upgrades leaves behind, and the load a tunnel puts on
 * its endpoint.
 */

const UPGRADE = 'GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

function chatYaml(url: string, route = 'chat', service = ''): string {
  return routesYaml(`drainTimeout: 300ms\nservices:\n  chat: { url: ${url}${service} }\nroutes:\n  - { name: ${route}, match: { path: /chat }, to: chat }\n`);
}

/** Resolves with `what` when `promise` settles within `ms`, with 'pending' otherwise. */
function within<T>(promise: Promise<unknown>, ms: number, what: T): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  return Promise.race([promise.then(() => what), late]).finally(() => clearTimeout(timer));
}

test('a tunnel whose upgrade was answered after a reload removed its route is closed with 1001, like one opened before it', async () => {
  const { upstream: chat, next } = await heldWsUpstream('chat');
  const proxy = await startProxy(chatYaml(chat.url));
  const arrived = next();
  const pending = wsConnect(portOf(proxy.app.proxyUrl), '/chat');
  const upstream = await arrived;
  // The route is renamed (so: gone) while the upstream thinks about the upgrade.
  await proxy.write(chatYaml(chat.url, 'talk'));
  expect((await proxy.app.reload('signal')).result).toBe('success');
  answer101(upstream);
  const client = await pending;
  expect(client.status).toBe(101);
  // What reconcile() does to a tunnel on a removed route: Close 1001, then the connection ends.
  const frame = await client.next(1_500);
  expect(frame.opcode).toBe(OP.close);
  expect(frame.payload.subarray(0, 2)).toEqual(closePayload(1001));
});

test('a client that hangs up while the upstream thinks about its upgrade takes the upstream connection down at once, blaming no one', async () => {
  const { upstream: chat, next } = await heldWsUpstream('chat');
  const proxy = await startProxy(chatYaml(chat.url, 'chat', ', timeouts: { response: 3s }'));
  const arrived = next();
  const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1' });
  onTestFinished(() => void client.destroy());
  client.on('error', () => undefined);
  client.write(UPGRADE);
  const upstream = await arrived;
  client.end();
  // Not held for timeouts.response (3 s), then counted as the upstream's timeout.
  expect(await within(once(upstream.socket, 'close'), 1_000, 'closed')).toBe('closed');
  expect(await metricSum(proxy.app, 'ficus_upstream_errors_total')).toBe(0);
});

test('a drain cuts an upgrade refusal that is still streaming once drainTimeout is up', async () => {
  const chat = await startWsUpstream('chat');
  // The upgrade is answered with an endless 200 (an event stream): relayed as the refusal it is.
  chat.server.removeAllListeners('upgrade');
  chat.server.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => undefined);
    socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n');
  });
  const proxy = await startProxy(chatYaml(chat.url));
  // Cleanups run last-registered first: the stream is cut before the proxy's own drain would wait on it.
  onTestFinished(() => chat.close());
  const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1' });
  onTestFinished(() => void client.destroy());
  client.on('error', () => undefined);
  let received = '';
  client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const closed = once(client, 'close');
  client.write(UPGRADE);
  await vi.waitFor(() => expect(received).toContain('hello'));
  expect(received).toMatch(/^HTTP\/1\.1 200 /);
  // drainTimeout is 300 ms: the drain, and the connection, end soon after.
  expect(await within(proxy.app.drain(), 2_000, 'drained')).toBe('drained');
  expect(await within(closed, 500, 'closed')).toBe('closed');
});

test('h2c upgrades served as plain requests on one keep-alive connection leave no listener behind', async () => {
  const warnings: string[] = [];
  const onWarning = (warning: Error): number => warnings.push(`${warning.name}: ${warning.message}`);
  process.on('warning', onWarning);
  onTestFinished(() => void process.off('warning', onWarning));
  const legacy = await startWsUpstream('legacy');
  const proxy = await startProxy(routesYaml(`drainTimeout: 300ms\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1' });
  onTestFinished(() => void client.destroy());
  let received = '';
  client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const requests = 15;
  client.write('GET /h2 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n'.repeat(requests));
  await vi.waitFor(() => expect(received.match(/HTTP\/1\.1 200 /g)).toHaveLength(requests));
  // process.emitWarning reports on the next tick.
  await new Promise((resolve) => setImmediate(resolve));
  expect(legacy.plain).toHaveLength(requests);
  expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
});

test('the 101 carries no Content-Length from the upstream (RFC 9110 §8.6: never on a 1xx)', async () => {
  const chat = await startWsUpstream('chat', { extraHeaders: ['Content-Length: 0'] });
  const proxy = await startProxy(chatYaml(chat.url));
  const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat');
  expect(client.status).toBe(101);
  expect(client.header('content-length')).toBeUndefined();
  expect(client.header('x-upstream')).toBe('chat');
});

test('an open tunnel counts as a request in flight on its endpoint until it ends', async () => {
  const chat = await startWsUpstream('chat');
  const proxy = await startProxy(chatYaml(chat.url));
  const inflight = async (): Promise<number> => {
    const status = (await (await fetch(`${proxy.app.adminUrl}/status`)).json()) as { services: { name: string; endpoints: { inflight: number }[] }[] };
    return status.services.find((s) => s.name === 'chat')?.endpoints[0]?.inflight ?? -1;
  };
  const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat');
  expect(client.status).toBe(101);
  expect(await inflight()).toBe(1);
  client.send(closePayload(1000), OP.close);
  await client.closed;
  await vi.waitFor(async () => expect(await inflight()).toBe(0), { timeout: 2_000, interval: 10 });
});

test('an upgrade pipelined behind a request refused with a close is neither planned nor sent upstream', async () => {
  const chat = await startWsUpstream('chat');
  const proxy = await startProxy(routesYaml(`services:\n  chat: { url: ${chat.url} }\nroutes:\n  - { name: chat, match: { path: / }, to: chat }\n`));
  const port = portOf(proxy.app.proxyUrl);
  // No Host: 400 and the connection closes, with the upgrade already parsed behind it.
  const out = await rawExchange(port, `GET /first HTTP/1.1\r\n\r\n${UPGRADE.replace('/chat', '/sneaky')}`);
  expect(out.statuses).toEqual([400]);
  expect(out.closed).toBe(true);
  // Anything ficus did with the upgrade would be done, and logged, before this one's answer.
  const client = await wsConnect(port, '/chat');
  expect(client.status).toBe(101);
  expect(chat.connections.map((c) => c.req.url)).toEqual(['/chat']);
  expect(proxy.logs.filter((l) => l.path === '/sneaky')).toEqual([]);
});

test('an upstream that stalls while refusing an upgrade is cut after the idle timeout', async () => {
  const chat = await startWsUpstream('chat');
  chat.server.removeAllListeners('upgrade');
  chat.server.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => undefined);
    // Ten bytes of a hundred, then nothing.
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
  });
  const proxy = await startProxy(routesYaml(`services:\n  chat: { url: ${chat.url}, timeouts: { idle: 200ms } }\nroutes:\n  - { name: chat, match: { path: / }, to: chat }\n`));
  const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat');
  expect(client.status).toBe(200);
  expect(client.body).toBe('0123456789');
});

test('during a drain, an upgrade on a connection still open gets 503 and never reaches its upstream', async () => {
  const chat = await startWsUpstream('chat');
  const held: (() => void)[] = [];
  const slow = await startUpstream('slow', (_req, res) => {
    res.writeHead(200, { 'content-length': '4' });
    held.push(() => res.end('done'));
  });
  const proxy = await startProxy(
    routesYaml(`drainTimeout: 5s\nservices:\n  chat: { url: ${chat.url} }\n  slow: { url: ${slow.url} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n  - { name: rest, match: { path: / }, to: slow }\n`),
  );
  const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1' });
  onTestFinished(() => void client.destroy());
  let received = '';
  client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  // The first response has begun, keep-alive, before the drain: the connection stays open for the upgrade behind it.
  client.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\n');
  await vi.waitFor(() => expect(held).toHaveLength(1));
  const draining = proxy.app.drain();
  client.write(UPGRADE);
  held[0]?.();
  await once(client, 'close');
  await draining;
  const responses = received.split(/(?=HTTP\/1\.1 )/);
  expect(responses.map((r) => r.slice(0, 12))).toEqual(['HTTP/1.1 200', 'HTTP/1.1 503']);
  expect(responses[1]).toMatch(/\r\nconnection: close\r\n/i);
  expect(chat.connections).toHaveLength(0);
  expect(chat.plain).toHaveLength(0);
});

test('a drain ends though a client answered with a refusal keeps its side of the connection open', async () => {
  const chat = await startWsUpstream('chat');
  const proxy = await startProxy(chatYaml(chat.url));
  const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1', allowHalfOpen: true });
  onTestFinished(() => void client.destroy());
  let received = '';
  client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  // No route: ficus answers 404 itself and ends its side; this client never ends its own.
  client.write(UPGRADE.replace('GET /chat ', 'GET /nope '));
  await once(client, 'end');
  expect(received).toMatch(/^HTTP\/1\.1 404 /);
  expect(await within(proxy.app.drain(), 5_000, 'drained')).toBe('drained');
});

test('a client that half-closes its tunnel behind an upstream that stays silent is let go after the half-closed bound', async () => {
  const { upstream: chat, next } = await heldWsUpstream('chat');
  const proxy = await startProxy(chatYaml(chat.url));
  const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1', allowHalfOpen: true });
  onTestFinished(() => void client.destroy());
  client.on('data', () => undefined);
  client.write(UPGRADE);
  const held = await next();
  // The upstream answers the upgrade, then never writes nor closes again, whatever it is sent.
  held.socket.removeAllListeners('end');
  answer101(held);
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_websocket_tunnels')).toBe(1), { timeout: 2_000, interval: 10 });
  // The client finishes sending (a FIN) and waits, its side open.
  client.end();
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_websocket_tunnels')).toBe(0), { timeout: 8_000, interval: 50 });
  await vi.waitFor(() => expect(proxy.logs.some((l) => l.event === 'access' && l.upgrade === 'websocket')).toBe(true), { timeout: 2_000, interval: 10 });
}, 15_000);

test('an upstream 101 without Upgrade is no switch of protocols: the client gets 502, counted against the endpoint', async () => {
  const { upstream: chat, next } = await heldWsUpstream('chat');
  const proxy = await startProxy(chatYaml(chat.url));
  const arrived = next();
  const pending = rawExchange(portOf(proxy.app.proxyUrl), UPGRADE);
  const upstream = await arrived;
  // Node's parser reads a 101 lacking Upgrade as a plain response, not an upgrade.
  upstream.socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n');
  const { statuses, closed } = await pending;
  expect(statuses).toEqual([502]);
  expect(closed).toBe(true);
  expect(await metricSum(proxy.app, 'ficus_upstream_errors_total', { kind: 'protocol' })).toBe(1);
  expect(await metricSum(proxy.app, 'ficus_requests_total', { route: 'chat', code: '502' })).toBe(1);
});

test('a tunnel that carries nothing either way for limits.tunnelIdleTimeout is closed with 1001; one in use stays open', async () => {
  const chat = await startWsUpstream('chat');
  const proxy = await startProxy(routesYaml(`limits: { tunnelIdleTimeout: 500ms }\nservices:\n  chat: { url: ${chat.url} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  const port = portOf(proxy.app.proxyUrl);
  const quiet = await wsConnect(port, '/chat');
  const busy = await wsConnect(port, '/chat');
  expect([quiet.status, busy.status]).toEqual([101, 101]);
  // The busy one echoes a message every 100 ms, well inside the bound, for twice its length.
  const started = performance.now();
  for (let i = 0; i < 10; i++) {
    busy.send(`tick ${i}`);
    expect((await busy.next()).payload.toString()).toBe(`tick ${i}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(performance.now() - started).toBeGreaterThan(1_000);
  const frame = await quiet.next(1_000);
  expect(frame.opcode).toBe(OP.close);
  expect(frame.payload.subarray(0, 2)).toEqual(closePayload(1001));
  busy.send('still here');
  expect((await busy.next()).payload.toString()).toBe('still here');
});

test('a client that keeps its side open after an upstream refused its upgrade is let go, so a drain does not wait for it', async () => {
  // A handshake without Sec-WebSocket-Key: a WebSocket server answers 400.
  const chat = await startWsUpstream('chat', { refuseWith: 400 });
  const proxy = await startProxy(routesYaml(`drainTimeout: 8s\nservices:\n  chat: { url: ${chat.url} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  const port = portOf(proxy.app.proxyUrl);
  for (let i = 0; i < 3; i++) {
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    onTestFinished(() => void client.destroy());
    client.on('error', () => undefined);
    const ended = once(client, 'end');
    client.resume();
    client.write('GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    // The relayed refusal is out and ficus ended its side; the client never ends its own.
    await ended;
  }
  const started = performance.now();
  await proxy.app.drain();
  // Held for ever before, the drain waited its whole 8 s; the answers' linger is 2 s.
  expect(performance.now() - started).toBeLessThan(4_000);
});

test('bytes of an upstream header that are not ASCII reach the client unchanged in a 101 and in a relayed refusal', async () => {
  const value = Buffer.from('café €', 'utf8');
  const server = createServer((_req, res) => res.end());
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => undefined);
    const refuse = req.url === '/chat/refuse';
    const status = refuse
      ? 'HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\nconnection: close\r\n'
      : `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(String(req.headers['sec-websocket-key']))}\r\n`;
    socket.write(Buffer.concat([Buffer.from(`${status}x-name: `), value, Buffer.from(`\r\n\r\n${refuse ? 'no' : ''}`)]));
    if (refuse) socket.end();
  });
  const { port: upstreamPort } = await listenForTest(server);
  const proxy = await startProxy(chatYaml(`http://127.0.0.1:${upstreamPort}`));
  const port = portOf(proxy.app.proxyUrl);
  const headerBytes = (response: string): string => {
    const raw = Buffer.from(response, 'latin1');
    const at = raw.indexOf('x-name: ') + 8;
    return raw.subarray(at, raw.indexOf('\r\n', at)).toString('hex');
  };
  const opened = await rawExchange(port, UPGRADE, { until: (r) => r.includes('\r\n\r\n') });
  const refused = await rawExchange(port, UPGRADE.replace('/chat', '/chat/refuse'), { until: (r) => r.endsWith('no') });
  expect([headerBytes(opened.response), headerBytes(refused.response)]).toEqual([value.toString('hex'), value.toString('hex')]);
});

test('a reload that points the service at another path of the same host closes the tunnels opened under the old one', async () => {
  const chat = await startWsUpstream('chat');
  const yaml = (base: string) => chatYaml(`${chat.url}${base}`);
  const proxy = await startProxy(yaml('/v1'));
  const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat');
  onTestFinished(() => void client.socket.destroy());
  await proxy.write(yaml('/v2'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  const frame = await client.next();
  expect(frame.opcode).toBe(OP.close);
});

test('an upgrade whose connection to one endpoint is refused is sent to another, as a plain GET is retried', async () => {
  const chat = await startWsUpstream('chat');
  const dead = await refusedPort();
  const proxy = await startProxy(routesYaml(`services:\n  chat: { urls: [${chat.url}, http://127.0.0.1:${dead}] }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  const statuses: number[] = [];
  // Round-robin: every other handshake is first sent to the endpoint that refuses.
  for (let i = 0; i < 4; i++) {
    const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat');
    statuses.push(client.status);
    client.socket.destroy();
  }
  expect(statuses).toEqual([101, 101, 101, 101]);
  expect(chat.connections).toHaveLength(4);
  // A handshake that succeeded on its second try is no failure in the access log.
  await vi.waitFor(() => expect(proxy.logs.filter((l) => l.event === 'access' && l.upgrade === 'websocket')).toHaveLength(4));
  expect(proxy.logs.filter((l) => l.event === 'access' && l.fault !== undefined)).toEqual([]);
});

test('a handshake with more fields than maxHeaderCount is an edge refusal (431), as the plain request is: no routed count, no access line', async () => {
  const chat = await startWsUpstream('chat');
  const proxy = await startProxy(routesYaml(`limits: { maxHeaderCount: 10 }\nservices:\n  chat: { url: ${chat.url} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  const many = Array.from({ length: 12 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
  const out = await rawExchange(portOf(proxy.app.proxyUrl), UPGRADE.replace('\r\n\r\n', `\r\n${many}\r\n`));
  expect(out.statuses).toEqual([431]);
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_edge_refusals_total')).toBe(1));
  expect(await metricSum(proxy.app, 'ficus_requests_total')).toBe(0);
  expect(proxy.logs.filter((l) => l.event === 'access')).toEqual([]);
  expect(chat.connections).toHaveLength(0);
});

test('an https endpoint that takes the TCP connection and never finishes TLS is a connect timeout for an upgrade, not a response timeout', async () => {
  // A TCP listener that reads the ClientHello and answers nothing.
  const silent = createNetServer((socket) => socket.resume());
  const { port } = await listenForTest(silent as unknown as Parameters<typeof listenForTest>[0]);
  const proxy = await startProxy(
    routesYaml(`services:\n  chat: { url: "https://127.0.0.1:${port}", timeouts: { connect: 200ms, response: 5s } }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`),
  );
  const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat');
  expect(client.status).toBe(504);
  await vi.waitFor(() => expect(proxy.logs.find((l) => l.event === 'access')).toMatchObject({ status: 504, fault: 'timeout' }));
  expect(proxy.logs.find((l) => l.event === 'upstream.error')).toMatchObject({ kind: 'timeout', message: 'connect timeout' });
});
