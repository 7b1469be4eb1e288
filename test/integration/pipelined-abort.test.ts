import { connect } from 'node:net';
import { expect, test, vi } from 'vitest';
import { metricBy } from '../helpers/metrics.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream } from '../helpers/upstream.js';
import { portOf } from '../helpers/websocket.js';

/**
 * A pipelined request still queued behind a slow one never gets its response's 'close' when the
 * client goes away; it must still be counted as finished, or drain waits for its whole timeout.
 */
test('a client leaving with a pipelined request queued does not hold up drain', async () => {
  let slowArrived: () => void = () => undefined;
  const slowStarted = new Promise<void>((resolve) => (slowArrived = resolve));
  const upstream = await startUpstream('legacy', (req, res) => {
    if (req.url !== '/slow') return void res.end('fast');
    slowArrived();
    setTimeout(() => res.end('slow'), 300);
  });
  const url = upstream.url;
  const proxy = await startProxy(routesYaml(`drainTimeout: 5s
services:
  legacy: { url: ${url} }
routes:
  - { name: rest, match: { path: / }, to: legacy }
`));
  const port = Number(new URL(proxy.app.proxyUrl).port);
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  socket.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n');
  await slowStarted;
  socket.destroy();

  const started = Date.now();
  await proxy.app.drain();
  expect(Date.now() - started).toBeLessThan(2_000);
  const metrics = await proxy.app.metrics.registry.metrics();
  expect(metrics).toMatch(/ficus_requests_total\{[^}]*code="000"[^}]*\} 2/);
});

test('a pipelined request whose connection ficus cut (its upstream reset the response ahead) is logged not_served, and counted as served by no service', async () => {
  const upstream = await startUpstream('legacy', (req, res) => {
    if (req.url !== '/reset') return void res.end('ok');
    res.writeHead(200, { 'content-length': '100' });
    res.write('x', () => req.socket.destroy());
  });
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const out = await rawExchange(portOf(proxy.app.proxyUrl), 'GET /reset HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n');
  expect(out.closed).toBe(true);
  await vi.waitFor(() => expect(proxy.logs.filter((l) => l.event === 'access')).toHaveLength(2));
  const lines = proxy.logs.filter((l) => l.event === 'access').map((l) => [l.path, l.status, l.fault, l.service]);
  expect(lines).toEqual(expect.arrayContaining([['/reset', 0, 'reset', 'legacy'], ['/second', 0, 'not_served', '']]));
  expect(await metricBy(proxy.app, 'ficus_requests_total', 'service')).toEqual({ legacy: 1, '': 1 });
});
