import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/** An upstream that sends its head and a first chunk at once and the rest when released. */
function heldOpen() {
  const held: { release: () => void; socket: Socket }[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('old:');
      held.push({ release: () => res.end(`done:${bytes}`), socket: req.socket });
    });
  };
  return { held, handler };
}

async function reloadWith(app: RunningApp, write: (text: string) => Promise<void>, text: string): Promise<void> {
  await write(text);
  const res = await request(`${app.adminUrl}/reload`, { method: 'POST' });
  expect(await res.body.json()).toMatchObject({ result: 'success' });
}

const BOTH = (oldUrl: string, newUrl: string) =>
  routesYaml(`services:
  old: { url: ${oldUrl} }
  new: { url: ${newUrl} }
routes:
  - name: old
    match: { path: /old }
    to: old
  - name: rest
    match: { path: / }
    to: new
`);
const NEW_ONLY = (newUrl: string) => routesYaml(`services:\n  new: { url: ${newUrl} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: new\n`);

test('a slow request finishes on the snapshot it started with, though the reload removed its route and service', async () => {
  const slow = heldOpen();
  const old = await startUpstream('old', slow.handler);
  const fresh = await startUpstream('new');
  const proxy = await startProxy(BOTH(old.url, fresh.url));
  const pool = proxy.app.store.current.services.get('old')?.endpoints[0]?.pool;

  const inflight = request(`${proxy.app.proxyUrl}/old/report`);
  await vi.waitFor(() => expect(slow.held).toHaveLength(1), { timeout: 2_000, interval: 5 });
  await reloadWith(proxy.app, proxy.write, NEW_ONLY(fresh.url));

  // New requests see the new config at once.
  const after = await request(`${proxy.app.proxyUrl}/old/report`);
  expect(await after.body.json()).toMatchObject({ name: 'new' });
  // The old pool takes no new work but lets the running request finish.
  expect(pool?.closed).toBe(true);
  expect(pool?.destroyed).toBe(false);

  slow.held[0]?.release();
  const res = await inflight;
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('old:done:0');
  // …and then the removed endpoint's connections go, well before keep-alive would close them.
  await vi.waitFor(() => expect(slow.held[0]?.socket.destroyed).toBe(true), { timeout: 2_000, interval: 5 });
  expect(pool?.destroyed).toBe(true);
  const access = proxy.logs.filter((line) => line.event === 'access' && line.path === '/old/report');
  expect(access.map((line) => [line.route, line.service, line.status])).toEqual([
    ['rest', 'new', 200],
    ['old', 'old', 200],
  ]);
});

test('a request body still streaming up during a reload reaches the upstream whole', async () => {
  const slow = heldOpen();
  const old = await startUpstream('old', slow.handler);
  const fresh = await startUpstream('new');
  const proxy = await startProxy(BOTH(old.url, fresh.url));

  const body = new PassThrough();
  const inflight = request(`${proxy.app.proxyUrl}/old/upload`, { method: 'POST', body, headers: { 'content-length': '20000' } });
  body.write(Buffer.alloc(10_000, 'a'));
  await vi.waitFor(() => expect(old.seen).toHaveLength(1), { timeout: 2_000, interval: 5 });
  await reloadWith(proxy.app, proxy.write, NEW_ONLY(fresh.url));
  body.end(Buffer.alloc(10_000, 'b'));
  await vi.waitFor(() => expect(slow.held).toHaveLength(1), { timeout: 2_000, interval: 5 });
  slow.held[0]?.release();
  const res = await inflight;
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('old:done:20000');
});

test('an endpoint kept across the reload keeps its pool and its warm connection', async () => {
  const fresh = await startUpstream('new');
  const old = await startUpstream('old');
  let connections = 0;
  fresh.server.on('connection', () => connections++);
  const proxy = await startProxy(BOTH(old.url, fresh.url));
  const pool = proxy.app.store.current.services.get('new')?.endpoints[0]?.pool;
  await (await request(`${proxy.app.proxyUrl}/x`)).body.json();
  await reloadWith(proxy.app, proxy.write, NEW_ONLY(fresh.url));
  await (await request(`${proxy.app.proxyUrl}/y`)).body.json();
  expect(proxy.app.store.current.services.get('new')?.endpoints[0]?.pool).toBe(pool);
  expect(pool?.closed).toBe(false);
  expect(fresh.seen).toHaveLength(2);
  expect(connections).toBe(1);
});
