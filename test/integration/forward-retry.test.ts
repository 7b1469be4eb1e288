import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

/** Round-robin starts at the first URL, so the order of `urls` decides who is tried first. */
async function proxyOver(urls: string[]) {
  return startProxy(
    routesYaml(`services:\n  app: { urls: [${urls.join(', ')}], outlier: { consecutiveFailures: 100 } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
}

async function connectErrors(adminUrl: string): Promise<number> {
  const text = await (await request(`${adminUrl}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith('ficus_upstream_errors_total{service="app",kind="connect"}'));
  return line ? Number(line.split(' ')[1]) : 0;
}

test.each(['GET', 'HEAD', 'OPTIONS', 'DELETE'])('a bodyless %s whose first endpoint refuses is retried once on another and succeeds', async (method) => {
  const good = await startUpstream('good');
  const dead = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await proxyOver([dead, good.url]);
  const res = await request(`${proxy.app.proxyUrl}/r`, { method });
  expect(res.statusCode).toBe(200);
  await res.body.dump();
  expect(good.seen).toEqual([expect.objectContaining({ method, url: '/r' })]);
  // The failure still counts against the endpoint that refused.
  expect(await connectErrors(proxy.app.adminUrl)).toBe(1);
});

test.each([
  { name: 'a POST with a body', method: 'POST', body: 'payload' },
  { name: 'a bodyless POST', method: 'POST', body: undefined },
  { name: 'a PUT with a body', method: 'PUT', body: 'payload' },
  { name: 'a PATCH with a body', method: 'PATCH', body: 'payload' },
])('$name is never retried', async ({ method, body }) => {
  const good = await startUpstream('good');
  const dead = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await proxyOver([dead, good.url]);
  const res = await request(`${proxy.app.proxyUrl}/r`, { method, body });
  expect(res.statusCode).toBe(502);
  await res.body.dump();
  expect(good.seen).toHaveLength(0);
  expect(await connectErrors(proxy.app.adminUrl)).toBe(1);
});

test('never more than one retry: two refusing endpoints give 502 and the third is not tried', async () => {
  const good = await startUpstream('good');
  const dead1 = `http://127.0.0.1:${await refusedPort()}`;
  const dead2 = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await proxyOver([dead1, dead2, good.url]);
  const res = await request(`${proxy.app.proxyUrl}/r`);
  expect(res.statusCode).toBe(502);
  await res.body.dump();
  expect(good.seen).toHaveLength(0);
  expect(await connectErrors(proxy.app.adminUrl)).toBe(2);
});

test('a GET whose only endpoint refuses gives 502 without a retry on the same endpoint', async () => {
  const dead = `http://127.0.0.1:${await refusedPort()}`;
  const proxy = await startProxy(routesYaml(`services:\n  app: { url: ${dead} }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`));
  const res = await request(`${proxy.app.proxyUrl}/r`);
  expect(res.statusCode).toBe(502);
  await res.body.dump();
  expect(await connectErrors(proxy.app.adminUrl)).toBe(1);
});

test('a GET that timed out waiting for its answer is not sent again', async () => {
  const slow = await startUpstream('slow', () => undefined);
  const good = await startUpstream('good');
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${slow.url}, ${good.url}], timeouts: { response: 200ms } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
  const res = await request(`${proxy.app.proxyUrl}/r`);
  expect(res.statusCode).toBe(504);
  await res.body.dump();
  expect(slow.seen).toHaveLength(1);
  expect(good.seen).toHaveLength(0);
});

/**
 * An upstream whose first connection is cut as soon as a request arrives, as when the upstream
 * closed a pooled keep-alive connection just as ficus reused it; later connections answer.
 */
async function resetsFirstConnection(): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => {
      requests++;
      if (requests === 1) socket.destroy();
      else socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests: () => requests };
}

test.each([
  { method: 'GET', status: 200, requests: 2 },
  { method: 'POST', status: 502, requests: 1 },
])('a $method whose connection is reset before any answer: $status after $requests attempt(s)', async ({ method, status, requests }) => {
  const upstream = await resetsFirstConnection();
  const proxy = await startProxy(routesYaml(`services:\n  app: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`));
  const res = await request(`${proxy.app.proxyUrl}/r`, { method });
  expect(res.statusCode).toBe(status);
  await res.body.dump();
  expect(upstream.requests()).toBe(requests);
});
