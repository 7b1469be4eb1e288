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
