import { once } from 'node:events';
import { connect } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

/** The value of one sample line of the admin /metrics text, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('requests_total and request_duration_seconds are recorded per route, service, side and code', async () => {
  let cut: () => void = () => undefined;
  const upstreamCut = new Promise<void>((resolve) => (cut = resolve));
  const legacy = await startUpstream('legacy', (req, res) => {
    if (req.url === '/app/fail') return void res.writeHead(500).end('no');
    if (req.url === '/app/slow') return void setTimeout(() => res.end('late'), 60);
    if (req.url === '/app/hang') return void res.once('close', cut);
    res.end('ok');
  });
  const dead = await refusedPort();
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  gone: { url: http://127.0.0.1:${dead} }
routes:
  - { name: tea, match: { exact: /tea }, respond: { status: 418 } }
  - { name: dead, match: { path: /dead }, to: gone }
  - { name: rest, match: { path: /app }, to: legacy }
`),
  );
  const base = proxy.app.proxyUrl;
  for (const path of ['/app/a', '/app/b', '/app/fail', '/app/slow', '/tea', '/nowhere', '/dead']) await (await request(`${base}${path}`)).body.dump();

  // A client that leaves before any answer is counted with code "000".
  const socket = connect(Number(new URL(base).port), '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  socket.write('GET /app/hang HTTP/1.1\r\nHost: a\r\n\r\n');
  await once(legacy.server, 'request');
  socket.destroy();
  await upstreamCut;

  const text = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  const rest = 'route="rest",service="legacy",color="",side="stable"';
  expect(sample(text, `ficus_requests_total{${rest},code="200"}`)).toBe(3);
  expect(sample(text, `ficus_requests_total{${rest},code="500"}`)).toBe(1);
  expect(sample(text, `ficus_requests_total{${rest},code="000"}`)).toBe(1);
  expect(sample(text, 'ficus_requests_total{route="tea",service="",color="",side="",code="418"}')).toBe(1);
  expect(sample(text, 'ficus_requests_total{route="",service="",color="",side="",code="404"}')).toBe(1);
  expect(sample(text, 'ficus_requests_total{route="dead",service="gone",color="",side="stable",code="502"}')).toBe(1);

  expect(sample(text, `ficus_request_duration_seconds_count{${rest}}`)).toBe(5);
  expect(sample(text, `ficus_request_duration_seconds_sum{${rest}}`)).toBeGreaterThanOrEqual(0.06);
  // Only /app/slow took 60 ms or more; the other four were quicker.
  expect(sample(text, `ficus_request_duration_seconds_bucket{le="0.05",${rest}}`)).toBeGreaterThanOrEqual(3);
  expect(sample(text, `ficus_request_duration_seconds_bucket{le="0.05",${rest}}`)).toBeLessThanOrEqual(4);
  expect(sample(text, `ficus_request_duration_seconds_bucket{le="+Inf",${rest}}`)).toBe(5);
  expect(sample(text, 'ficus_upstream_errors_total{service="gone",kind="connect"}')).toBe(1);
});
