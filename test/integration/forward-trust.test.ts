import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/*
 * Who may tell the upstream about earlier hops (SPEC §1.7): only a peer in trustedProxies. A
 * client's X-Forwarded-Ssl, -Scheme, -Port, X-Real-IP… are dropped like its X-Forwarded-For,
 * since Rack, Spring and nginx-era monoliths read them first; ficus's own secrets (a preview
 * token) leave in neither spelling, and no empty field or Proxy-* field goes out.
 */

async function proxyTo(upstream: { url: string }, extra = '') {
  const proxy = await startProxy(routesYaml(`${extra}services:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  return Number(new URL(proxy.app.proxyUrl).port);
}

/** Sends `text` on a fresh connection; everything the proxy sent back until it closed. */
async function exchange(port: number, text: string): Promise<string> {
  return (await rawExchange(port, text)).response;
}

test('an untrusted client’s other X-Forwarded-* fields and X-Real-IP never reach the upstream', async () => {
  const legacy = await startUpstream('legacy');
  const port = await proxyTo(legacy);
  await exchange(port, ['GET / HTTP/1.1', 'Host: h', 'Connection: close', 'X-Forwarded-Ssl: on', 'X-Forwarded-Scheme: https', 'X-Forwarded-Port: 443', 'X-Forwarded-Prefix: /admin', 'X_Forwarded_Ssl: on', 'X-Real-IP: 6.6.6.6', '', ''].join('\r\n'));
  const names = Object.keys(legacy.seen[0]?.headers ?? {});
  for (const name of ['x-forwarded-ssl', 'x-forwarded-scheme', 'x-forwarded-port', 'x-forwarded-prefix', 'x_forwarded_ssl', 'x-real-ip']) expect(names).not.toContain(name);
});

test('a trusted proxy’s other X-Forwarded-* fields and X-Real-IP are kept', async () => {
  const legacy = await startUpstream('legacy');
  const port = await proxyTo(legacy, 'trustedProxies: [127.0.0.1]\n');
  await exchange(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Forwarded-Ssl: on\r\nX-Real-IP: 9.9.9.9\r\n\r\n');
  expect(legacy.seen[0]?.headers).toMatchObject({ 'x-forwarded-ssl': 'on', 'x-real-ip': '9.9.9.9' });
});

test('a preview header configured with an underscore never reaches the upstream, in either spelling', async () => {
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  const proxy = await startProxy(
    routesYaml(`services:\n  orders:\n    blue: { url: ${blue.url} }\n    green: { url: ${green.url} }\n    active: blue\n    preview: { header: x_preview_token, token: s3cret }\nroutes:\n  - { name: orders, match: { path: / }, to: orders }\n`),
  );
  const port = Number(new URL(proxy.app.proxyUrl).port);
  for (const name of ['x_preview_token', 'x-preview-token']) await exchange(port, `GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n${name}: s3cret\r\n\r\n`);
  expect(green.seen).toHaveLength(1);
  for (const seen of [...blue.seen, ...green.seen] as Upstream['seen']) expect(seen.rawHeaders).not.toContain('s3cret');
});

test('an HTTP/1.0 request without Host gets no empty X-Forwarded-Host nor host="" in Forwarded', async () => {
  const legacy = await startUpstream('legacy');
  const port = await proxyTo(legacy);
  await exchange(port, 'GET / HTTP/1.0\r\n\r\n');
  expect(legacy.seen[0]?.headers['x-forwarded-host']).toBeUndefined();
  expect(legacy.seen[0]?.headers.forwarded).toBe('for=127.0.0.1;proto=http');
});

test('no Proxy-* response field reaches the client', async () => {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nProxy-Authentication-Info: x\r\nProxy-Foo: 1\r\nContent-Length: 2\r\n\r\nok'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const port = await proxyTo({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}` });
  const response = await exchange(port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  expect(response).toMatch(/^HTTP\/1.1 200/);
  expect(response.toLowerCase()).not.toContain('\r\nproxy-');
});

/*
 * What ficus does not believe from a peer, it does not route on either: an identity, a cohort
 * or a route condition read from X-Forwarded-* is read from trusted peers only.
 */
test('an untrusted client naming itself in X-Forwarded-User is neither that user nor in its cohort, nor given its toggles', async () => {
  const legacy = await startUpstream('legacy');
  const next = await startUpstream('next');
  const routes = (trusted: string) =>
    routesYaml(`identity: { header: x-forwarded-user }
trustedProxies: [${trusted}]
services:
  legacy: { url: ${legacy.url} }
  next: { url: ${next.url} }
cohorts:
  staff: { users: [alice] }
toggles:
  staff-tools: { cohorts: [staff] }
routes:
  - { name: staff-preview, match: { path: /, cohort: staff }, to: next }
  - { name: rest, match: { path: / }, to: legacy }
`);
  const untrusted = await startProxy(routes('10.0.0.0/8'));
  const answer = await request(`${untrusted.app.proxyUrl}/account`, { headers: { 'x-forwarded-user': 'alice' } });
  await answer.body.dump();
  expect(answer.headers['x-upstream']).toBe('legacy');
  expect(legacy.seen.at(-1)?.headers['x-ficus-toggles']).toBeUndefined();

  // The same request from a trusted proxy (an auth proxy in front) is alice's.
  const trusted = await startProxy(routes('127.0.0.0/8'));
  const fromProxy = await request(`${trusted.app.proxyUrl}/account`, { headers: { 'x-forwarded-user': 'alice' } });
  await fromProxy.body.dump();
  expect(fromProxy.headers['x-upstream']).toBe('next');
  expect(next.seen.at(-1)?.headers['x-ficus-toggles']).toBe('staff-tools');
});

test('a route condition on X-Forwarded-Proto is not met by what an untrusted client claims', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`trustedProxies: [10.0.0.0/8]
services:
  legacy: { url: ${legacy.url} }
routes:
  - { name: https-only, match: { path: /, headers: { x-forwarded-proto: https } }, to: legacy }
  - { name: plain, match: { path: / }, respond: { status: 426, body: "use https" } }
`),
  );
  const answer = await request(`${proxy.app.proxyUrl}/pay`, { headers: { 'x-forwarded-proto': 'https' } });
  await answer.body.dump();
  expect(answer.statusCode).toBe(426);
  expect(legacy.seen).toHaveLength(0);
});

test('a cohort defined by a forwarding field (X-Real-IP) is not joined by what an untrusted client claims', async () => {
  const legacy = await startUpstream('legacy');
  const next = await startUpstream('next');
  const routes = (trusted: string) =>
    routesYaml(`trustedProxies: [${trusted}]
services:
  legacy: { url: ${legacy.url} }
  next: { url: ${next.url} }
cohorts:
  office: { header: { name: x-real-ip, value: 10.1.2.3 } }
routes:
  - { name: office, match: { path: /, cohort: office }, to: next }
  - { name: rest, match: { path: / }, to: legacy }
`);
  const untrusted = await startProxy(routes('10.0.0.0/8'));
  const answer = await request(`${untrusted.app.proxyUrl}/`, { headers: { 'x-real-ip': '10.1.2.3' } });
  await answer.body.dump();
  expect(answer.headers['x-upstream']).toBe('legacy');
  expect(next.seen).toHaveLength(0);

  // Said by a trusted proxy in front, the same field puts the caller in the cohort.
  const trusted = await startProxy(routes('127.0.0.0/8'));
  const fromProxy = await request(`${trusted.app.proxyUrl}/`, { headers: { 'x-real-ip': '10.1.2.3' } });
  await fromProxy.body.dump();
  expect(fromProxy.headers['x-upstream']).toBe('next');
});
