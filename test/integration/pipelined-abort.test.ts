import { connect } from 'node:net';
import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

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
