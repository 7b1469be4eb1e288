import { once } from 'node:events';
import { connect } from 'node:net';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy, type LogLine } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

async function accessProxy(extra = '') {
  const legacy = await startUpstream('legacy');
  const down = await refusedPort();
  const proxy = await startProxy(
    routesYaml(`${extra}services:
  legacy: { url: ${legacy.url} }
  down: { url: http://127.0.0.1:${down} }
routes:
  - name: paused
    match: { path: /paused }
    respond: { status: 503, body: "paused for now" }
  - name: gone
    match: { path: /down }
    to: down
  - name: api
    match: { path: /api }
    to: legacy
`),
  );
  return { proxy, legacy };
}

const accessLines = (logs: LogLine[]) => logs.filter((line) => line.event === 'access');

/** Sends raw bytes, as a client that is not a well-behaved library would, and reads to the end. */
async function raw(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  socket.end(text);
  let reply = '';
  socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
  await once(socket, 'close');
  return reply;
}

test('a proxied request leaves one access line: request id, route, service, status, durations, bytes', async () => {
  const { proxy, legacy } = await accessProxy();
  const res = await request(`${proxy.app.proxyUrl}/api/orders`, { headers: { 'x-request-id': 'req-7f3a' } });
  const body = await res.body.text();
  expect(res.statusCode).toBe(200);
  const lines = accessLines(proxy.logs);
  expect(lines).toHaveLength(1);
  const [line] = lines;
  expect(line).toMatchObject({ level: 30, requestId: 'req-7f3a', method: 'GET', path: '/api/orders', route: 'api', service: 'legacy', endpoint: legacy.url, status: 200, bytesOut: Buffer.byteLength(body) });
  expect(line?.durationMs).toEqual(expect.any(Number));
  expect(line?.upstreamMs).toEqual(expect.any(Number));
  expect(Number(line?.durationMs)).toBeGreaterThanOrEqual(Number(line?.upstreamMs));
  expect(legacy.seen[0]?.headers['x-request-id']).toBe('req-7f3a');
});

test.each([
  { path: '/paused', status: 503, route: 'paused', service: '', bytes: 'paused for now'.length },
  { path: '/nowhere', status: 404, route: '', service: '', bytes: undefined },
  { path: '/down/x', status: 502, route: 'gone', service: 'down', bytes: undefined },
  // Refused before normalization: the raw origin-form path is what the log can say.
  { path: '/traced', method: 'TRACE', status: 405, route: '', service: '', bytes: undefined },
  { path: '/bad%zz', status: 400, route: '', service: '', bytes: undefined },
])('$path ($status) leaves one access line too', async ({ path, method, status, route, service, bytes }) => {
  const { proxy } = await accessProxy();
  const res = await request(`${proxy.app.proxyUrl}${path}`, { method: method ?? 'GET' });
  const body = await res.body.text();
  expect(res.statusCode).toBe(status);
  const lines = accessLines(proxy.logs);
  expect(lines).toEqual([expect.objectContaining({ path, status, route, service, requestId: res.headers['x-request-id'] ?? expect.any(String) })]);
  expect(lines[0]?.bytesOut).toBe(bytes ?? Buffer.byteLength(body));
});

test('no log line ever holds a cookie, an authorization header, a token, a user id or a query string', async () => {
  const { proxy } = await accessProxy();
  const secrets = ['COOKIE-s3cr3t', 'AUTH-s3cr3t', 'QUERY-s3cr3t', 'USER-s3cr3t', 'APIKEY-s3cr3t', 'USERINFO-s3cr3t'];
  const headers = {
    cookie: `session=${secrets[0]}; uid=${secrets[3]}`,
    authorization: `Bearer ${secrets[1]}`,
    'x-user-id': secrets[3],
    'x-api-key': secrets[4],
  };
  for (const path of [`/api/x?token=${secrets[2]}`, `/paused?token=${secrets[2]}`, `/nowhere?token=${secrets[2]}`, `/down?token=${secrets[2]}`]) {
    await (await request(`${proxy.app.proxyUrl}${path}`, { headers })).body.text();
  }
  const host = new URL(proxy.app.proxyUrl).host;
  await raw(proxy.app.proxyUrl, `GET http://user:${secrets[5]}@${host}/api/x?token=${secrets[2]} HTTP/1.1\r\nhost: ${host}\r\ncookie: s=${secrets[0]}\r\nconnection: close\r\n\r\n`);
  await raw(proxy.app.proxyUrl, `GET /api/x?token=${secrets[2]} HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\nauthorization: Bearer ${secrets[1]}\r\n\r\n`);

  expect(accessLines(proxy.logs).length).toBeGreaterThanOrEqual(5);
  const text = proxy.logs.map((line) => JSON.stringify(line)).join('\n');
  for (const secret of secrets) expect(text).not.toContain(secret);
  expect(text).not.toContain('token=');
});

test('accessLog: false turns the access lines off', async () => {
  const { proxy } = await accessProxy('accessLog: false\n');
  await (await request(`${proxy.app.proxyUrl}/api/x`)).body.text();
  expect(accessLines(proxy.logs)).toEqual([]);
});
