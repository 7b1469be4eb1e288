import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

interface Arrival {
  req: IncomingMessage;
  res: ServerResponse;
  /** Resolves when the upstream's connection closes before its response finished. */
  cut: Promise<number>;
}

/** Two endpoints that hand every request to the test; outlier detection would eject on one failure. */
async function setup() {
  const arrivals: Arrival[] = [];
  const waiting: ((arrival: Arrival) => void)[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const cut = new Promise<number>((resolve) => res.once('close', () => !res.writableFinished && resolve(performance.now())));
    const arrival = { req, res, cut };
    const next = waiting.shift();
    if (next) next(arrival);
    else arrivals.push(arrival);
  };
  const a = await startUpstream('a', handler);
  const b = await startUpstream('b', handler);
  const proxy = await startProxy(
    routesYaml(`services:\n  app: { urls: [${a.url}, ${b.url}], outlier: { consecutiveFailures: 1 } }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`),
  );
  const nextArrival = () => new Promise<Arrival>((resolve) => (arrivals.length ? resolve(arrivals.shift() as Arrival) : waiting.push(resolve)));
  return { proxy, port: Number(new URL(proxy.app.proxyUrl).port), nextArrival };
}

/** Fails the test quickly, instead of at the test timeout, when `promise` does not settle in time. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function rawClient(port: number): Socket {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  return socket;
}

async function metricsText(adminUrl: string): Promise<string> {
  return (await request(`${adminUrl}/metrics`)).body.text();
}

const scenarios = [
  {
    name: 'while the upstream has not answered yet',
    async run(socket: Socket, arrival: () => Promise<Arrival>) {
      socket.write('GET /wait HTTP/1.1\r\nhost: a\r\n\r\n');
      return arrival();
    },
  },
  {
    name: 'in the middle of the response body',
    async run(socket: Socket, arrival: () => Promise<Arrival>) {
      socket.write('GET /download HTTP/1.1\r\nhost: a\r\n\r\n');
      const got = await arrival();
      got.res.writeHead(200, { 'content-type': 'application/octet-stream' });
      got.res.write(Buffer.alloc(1024, 97));
      await once(socket, 'data');
      return got;
    },
  },
  {
    name: 'in the middle of the request body',
    async run(socket: Socket, arrival: () => Promise<Arrival>) {
      socket.write('POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 1000000\r\n\r\n');
      socket.write(Buffer.alloc(1024, 97));
      const got = await arrival();
      await once(got.req, 'data');
      return got;
    },
  },
];

test.each(scenarios)('a client abort $name aborts the upstream request and is not held against the endpoint', async ({ run }) => {
  const { proxy, port, nextArrival } = await setup();
  for (let i = 0; i < 4; i++) {
    const socket = rawClient(port);
    const arrival = await run(socket, nextArrival);
    const abortedAt = performance.now();
    socket.destroy();
    const cutAt = await within(arrival.cut, 2_000, 'the upstream request being aborted');
    expect(cutAt - abortedAt).toBeLessThan(1_000);
  }
  const metrics = await metricsText(proxy.app.adminUrl);
  expect(metrics).not.toMatch(/^ficus_upstream_errors_total\{/m);
  expect(metrics).not.toMatch(/^ficus_endpoint_up\{.*\} 0$/m);
  expect(metrics).toMatch(/^ficus_requests_total\{route="rest",service="app",color="",side="stable",code="000"\} 4$/m);
  // The access line says who ended it.
  const access = proxy.logs.filter((line) => line.event === 'access');
  expect(access.map((line) => [line.status, line.fault])).toEqual(Array(4).fill([0, 'client_abort']));
});

test('after client aborts the endpoints still serve', async () => {
  const { proxy, port, nextArrival } = await setup();
  const socket = rawClient(port);
  socket.write('GET /wait HTTP/1.1\r\nhost: a\r\n\r\n');
  const first = await nextArrival();
  socket.destroy();
  await within(first.cut, 2_000, 'the upstream request being aborted');
  const pending = request(`${proxy.app.proxyUrl}/after`);
  const second = await nextArrival();
  second.res.end('fine');
  const res = await pending;
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('fine');
});

test('a client that leaves mid-response: the access line still reports the bytes sent and the upstream time', async () => {
  const held: ServerResponse[] = [];
  const app = await startUpstream('app', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    setTimeout(() => res.write(Buffer.alloc(1024, 97)), 50);
    held.push(res);
  });
  onTestFinished(() => held.forEach((r) => r.destroy()));
  const proxy = await startProxy(routesYaml(`services:\n  app: { url: ${app.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: app }\n`));
  const socket = connect(Number(new URL(proxy.app.proxyUrl).port), '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write('GET /download HTTP/1.1\r\nhost: a\r\n\r\n');
  let received = '';
  await new Promise<void>((resolve) =>
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('a'.repeat(1024))) resolve();
    }),
  );
  socket.destroy();
  await vi.waitFor(() => expect(proxy.logs.filter((l) => l.event === 'access')).toHaveLength(1));
  const line = proxy.logs.find((l) => l.event === 'access');
  expect(line).toMatchObject({ status: 0, fault: 'client_abort' });
  // The exchange is told of the abort before the line is written, so the line has its figures.
  expect(line?.bytesOut).toBe(1024);
  expect(Number(line?.upstreamMs)).toBeGreaterThan(0);
});
