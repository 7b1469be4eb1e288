import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import { startFicus } from '../helpers/child.js';
import { routesYaml, startProxy, tempDir } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';
import { answer101, heldWsUpstream, OP, portOf, wsConnect } from '../helpers/websocket.js';

// Runs the built CLI (`npm test` builds first; run `npm run build` before running this file alone).
const until = (check: () => unknown) => vi.waitFor(check, { timeout: 5_000, interval: 10 });

/** An upstream whose responses start at once and end when the test says so (or never). */
async function slowUpstream() {
  const held: (() => void)[] = [];
  const upstream = await startUpstream('slow', (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('started,');
    held.push(() => res.end('finished'));
  });
  return { upstream, held };
}

function config(url: string, drainTimeout = '5s'): string {
  return routesYaml(`drainTimeout: ${drainTimeout}\nservices:\n  slow: { url: ${url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: slow\n`);
}

/** Resolves to the connection error code, or 'connected'. */
async function tryConnect(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  try {
    await once(socket, 'connect');
    return 'connected';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  } finally {
    socket.destroy();
  }
}

async function readyz(adminUrl: string): Promise<number> {
  const res = await request(`${adminUrl}/readyz`);
  await res.body.text();
  return res.statusCode;
}


test('app.drain(): not ready, stops accepting, lets the in-flight request finish, then resolves', async () => {
  const { upstream, held } = await slowUpstream();
  const proxy = await startProxy(config(upstream.url));
  const { app } = proxy;
  const inflight = request(`${app.proxyUrl}/report`);
  await until(() => expect(held).toHaveLength(1));

  let drained = false;
  const draining = app.drain().then(() => (drained = true));
  expect(await readyz(app.adminUrl)).toBe(503);
  expect(await tryConnect(app.proxyUrl)).toBe('ECONNREFUSED');
  expect(drained).toBe(false);

  held[0]?.();
  const res = await inflight;
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('started,finished');
  await draining;
  expect(await tryConnect(app.adminUrl)).toBe('ECONNREFUSED');
  expect(proxy.logs.map((line) => line.event)).toEqual(expect.arrayContaining(['draining', 'stopped']));
  expect(proxy.logs.some((line) => line.event === 'drain.expired')).toBe(false);
});

test('app.drain() cuts a request that outlives drainTimeout, and still resolves', async () => {
  const { upstream, held } = await slowUpstream();
  const proxy = await startProxy(config(upstream.url, '200ms'));
  const inflight = request(`${proxy.app.proxyUrl}/forever`)
    .then((res) => res.body.text())
    .catch((error: unknown) => error);
  await until(() => expect(held).toHaveLength(1));
  const started = performance.now();
  await proxy.app.drain();
  expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  expect(performance.now() - started).toBeLessThan(3_000);
  // The client never sees a response that looks complete.
  expect(await inflight).toBeInstanceOf(Error);
  expect(proxy.logs).toContainEqual(expect.objectContaining({ event: 'drain.expired', level: 40, inflight: 1 }));
});

test('during app.drain(), a request arriving on a kept-alive connection is served with connection: close', async () => {
  const { upstream, held } = await slowUpstream();
  const proxy = await startProxy(config(upstream.url));
  const { hostname, port } = new URL(proxy.app.proxyUrl);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  let reply = '';
  socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
  const closed = once(socket, 'close');
  socket.write('GET /first HTTP/1.1\r\nhost: x\r\n\r\n');
  await until(() => expect(held).toHaveLength(1));

  const draining = proxy.app.drain();
  expect(await readyz(proxy.app.adminUrl)).toBe(503);
  socket.write('GET /second HTTP/1.1\r\nhost: x\r\n\r\n');
  // Pipelined behind the first, the second is forwarded in its turn, once the first is answered.
  held[0]?.();
  await until(() => expect(held).toHaveLength(2));
  held[1]?.();
  await closed;
  await draining;
  const responses = reply.split(/(?=HTTP\/1\.1 )/);
  expect(responses).toHaveLength(2);
  expect(responses[0]).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*started,[\s\S]*finished/);
  expect(responses[1]).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*\r\nconnection: close\r\n[\s\S]*started,[\s\S]*finished/i);
});

test.each(['SIGTERM', 'SIGINT'] as const)('%s: /readyz turns 503, the listener closes, the in-flight request finishes, exit 0', async (signal) => {
  const { upstream, held } = await slowUpstream();
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, config(upstream.url));
  const ficus = await startFicus(file);
  expect(await readyz(ficus.adminUrl)).toBe(200);

  const inflight = request(`${ficus.proxyUrl}/report`);
  await until(() => expect(held).toHaveLength(1));
  ficus.child.kill(signal);
  await until(async () => expect(await readyz(ficus.adminUrl)).toBe(503));
  await until(async () => expect(await tryConnect(ficus.proxyUrl)).toBe('ECONNREFUSED'));
  expect(ficus.child.exitCode).toBeNull();

  held[0]?.();
  const res = await inflight;
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('started,finished');
  expect(await ficus.exited).toEqual([0, null]);
  expect(ficus.lines.map((line) => line.event)).toEqual(expect.arrayContaining(['draining', 'stopped']));
  const access = ficus.lines.find((line) => line.event === 'access');
  expect(access).toMatchObject({ path: '/report', status: 200 });
});

test('SIGTERM with a request that never finishes still exits 0 once drainTimeout has passed', async () => {
  const { upstream, held } = await slowUpstream();
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, config(upstream.url, '300ms'));
  const ficus = await startFicus(file);
  const inflight = request(`${ficus.proxyUrl}/forever`)
    .then((res) => res.body.text())
    .catch((error: unknown) => error);
  await until(() => expect(held).toHaveLength(1));
  const started = performance.now();
  ficus.child.kill('SIGTERM');
  expect(await ficus.exited).toEqual([0, null]);
  expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  expect(performance.now() - started).toBeLessThan(5_000);
  expect(await inflight).toBeInstanceOf(Error);
  expect(ficus.lines).toContainEqual(expect.objectContaining({ event: 'drain.expired' }));
});

/** A raw client connection that collects what it receives. */
function rawClient(proxyUrl: string) {
  const { hostname, port } = new URL(proxyUrl);
  const socket = connect({ port: Number(port), host: hostname });
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  return { socket, closed: once(socket, 'close'), text: () => data };
}

test('a keep-alive response still awaited when the drain starts says Connection: close, so the client sends nothing more on it', async () => {
  const held: (() => void)[] = [];
  const upstream = await startUpstream('slow', (_req: IncomingMessage, res: ServerResponse) => held.push(() => res.end('done')));
  const proxy = await startProxy(config(upstream.url));
  const client = rawClient(proxy.app.proxyUrl);
  client.socket.write('GET /a HTTP/1.1\r\nhost: x\r\n\r\n');
  await until(() => expect(held).toHaveLength(1));
  const draining = proxy.app.drain();
  held[0]?.();
  await client.closed;
  expect(client.text()).toMatch(/^HTTP\/1\.1 200 /);
  expect(client.text()).toMatch(/\r\nconnection: close\r\n/i);
  expect(client.text().endsWith('done')).toBe(true);
  await draining;
});

test('requests cut by the drain deadline are logged as drain_timeout, not as clients that left', async () => {
  const { upstream, held } = await slowUpstream();
  const proxy = await startProxy(config(upstream.url, '300ms'));
  const client = rawClient(proxy.app.proxyUrl);
  client.socket.write('GET /long HTTP/1.1\r\nhost: x\r\n\r\n');
  await until(() => expect(held).toHaveLength(1));
  await proxy.app.drain();
  await until(() => expect(proxy.logs.filter((l) => l.event === 'access')).toEqual([expect.objectContaining({ status: 0, fault: 'drain_timeout' })]));
});

test('a request sent on a kept-alive connection while WebSocket tunnels close is waited for, within drainTimeout', async () => {
  // An upstream that never answers the drain's Close: the tunnel lasts its grace (1 s).
  const { upstream: chat, next } = await heldWsUpstream('chat');
  const held = new Map<string, () => void>();
  const upstream = await startUpstream('app', (req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-length': req.url === '/first' ? '4' : '6' });
    if (req.url === '/first') res.write('do');
    held.set(req.url ?? '', () => res.end(req.url === '/first' ? 'ne' : 'second'));
  });
  const proxy = await startProxy(
    routesYaml(`drainTimeout: 10s\nservices:\n  app: { url: ${upstream.url} }\n  chat: { url: ${chat.url} }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
  const arrived = next();
  const upgrading = wsConnect(portOf(proxy.app.proxyUrl), '/chat');
  answer101(await arrived);
  const tunnel = await upgrading;
  expect(tunnel.status).toBe(101);
  const client = rawClient(proxy.app.proxyUrl);
  // Its head goes out before the drain, saying keep-alive: the client may send again.
  client.socket.write('GET /first HTTP/1.1\r\nhost: x\r\n\r\n');
  await until(() => expect(client.text()).toContain('\r\n\r\ndo'));
  const draining = proxy.app.drain();
  // The drain asks the tunnel to close; neither of its peers answers.
  expect((await tunnel.next()).opcode).toBe(OP.close);
  held.get('/first')?.();
  await until(() => expect(client.text().endsWith('done')).toBe(true));
  client.socket.write('POST /second HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n');
  await until(() => expect(held.has('/second')).toBe(true));
  // The tunnel ends (its grace is over) while /second is in flight: once its line is logged the
  // drain has moved past the tunnels, and must still wait for /second.
  await until(() => expect(proxy.logs.some((l) => l.event === 'access' && l.upgrade === 'websocket')).toBe(true));
  expect(client.socket.destroyed).toBe(false);
  held.get('/second')?.();
  await client.closed;
  await draining;
  expect(client.text().endsWith('second')).toBe(true);
  expect(proxy.logs.some((line) => line.event === 'drain.expired')).toBe(false);
});

test('a request read behind a response the drain meant to close the connection after is answered in its turn, and closes it', async () => {
  const held = new Map<string, () => void>();
  const upstream = await startUpstream('slow', (req: IncomingMessage, res: ServerResponse) => held.set(req.url ?? '', () => res.end(`${req.url ?? ''};`)));
  const proxy = await startProxy(config(upstream.url));
  const client = rawClient(proxy.app.proxyUrl);
  client.socket.write('GET /a HTTP/1.1\r\nhost: x\r\n\r\n');
  await until(() => expect(held.has('/a')).toBe(true));
  const draining = proxy.app.drain();
  client.socket.write('GET /b HTTP/1.1\r\nhost: x\r\n\r\n');
  // /b is forwarded in its turn, once /a is out.
  held.get('/a')?.();
  await until(() => expect(held.has('/b')).toBe(true));
  held.get('/b')?.();
  await client.closed;
  await draining;
  const responses = client.text().split(/(?=HTTP\/1\.1 )/);
  expect(responses.map((r) => r.slice(0, 12))).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200']);
  expect(responses[0]).not.toMatch(/\r\nconnection: close\r\n/i);
  expect(responses[1]).toMatch(/\r\nconnection: close\r\n/i);
  expect(client.text().endsWith('/b;')).toBe(true);
});
