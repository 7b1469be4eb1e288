import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream } from '../helpers/upstream.js';

/*
 * The admin listener is reached by more than the operator's curl: by anyone on its network
 * when it has a token, and, without one on loopback, by any web page open in a browser on the
 * operator's machine (a form POST needs no CORS preflight; a DNS name rebound to 127.0.0.1
 * reads as same-origin). None of them may change or read what the operator did not ask for.
 */

async function canaryProxy(admin = '{ host: 127.0.0.1, port: 0 }') {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('v2');
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services:
  legacy: { url: ${legacy.url} }
  v2: { url: ${v2.url} }
routes:
  - { name: search, match: { path: /search }, to: legacy, canary: { to: v2, weight: 50 } }
`).replace('admin: { host: 127.0.0.1, port: 0 }', `admin: ${admin}`),
  );
  return { proxy, port: Number(new URL(proxy.app.adminUrl).port) };
}

test('a long Authorization header cannot stall the process: the bearer token is read without backtracking', async () => {
  const { proxy } = await canaryProxy('{ host: 127.0.0.1, port: 0, token: s3cret }');
  const started = performance.now();
  for (let i = 0; i < 5; i++) {
    const res = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST', headers: { authorization: `Bearer x${' '.repeat(16_000)}y` } });
    expect(res.statusCode).toBe(401);
    await res.body.dump();
  }
  // A match quadratic in the header took about 0.4 s for each of these; linear, microseconds.
  expect(performance.now() - started).toBeLessThan(500);
});

test.each([
  { page: 'a cross-site form', headers: 'Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n' },
  { page: 'a sandboxed or redirected page', headers: 'Origin: null\r\n' },
  { page: 'another origin, by Origin alone', headers: 'Origin: http://127.0.0.1:1\r\n' },
])('without a token, a POST from $page is refused (403) and changes nothing', async ({ headers }) => {
  const { proxy, port } = await canaryProxy();
  const out = await rawExchange(port, `POST /routes/search/eject HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${headers}Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nx=y`);
  expect(out.statuses).toEqual([403]);
  expect(proxy.app.store.current.canaries[0]?.toRecord().state).toBe('running');
});

test('a loopback admin answers only to IP and localhost Hosts (a DNS-rebound name gets 421); curl and the CLI still work', async () => {
  const { proxy, port } = await canaryProxy();
  for (const request of [`GET /config`, `POST /routes/search/readmit`]) {
    const rebound = await rawExchange(port, `${request} HTTP/1.1\r\nHost: rebind.evil.example:${port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    expect({ request, statuses: rebound.statuses }).toEqual({ request, statuses: [421] });
  }
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`]) {
    const ok = await rawExchange(port, `GET /config HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect({ host, statuses: ok.statuses }).toEqual({ host, statuses: [200] });
  }
  // What curl sends: no Origin, no Sec-Fetch-Site.
  const cli = await rawExchange(port, `POST /routes/search/eject HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  expect(cli.statuses).toEqual([200]);
  expect(proxy.app.store.current.canaries[0]?.toRecord().state).toBe('ejected');
});

test('an admin listener on every address (with its token) answers to any Host, a machine name over loopback included', async () => {
  const { port } = await canaryProxy('{ host: 0.0.0.0, port: 0, token: s3cret }');
  const out = await rawExchange(port, `GET /config HTTP/1.1\r\nHost: ficus-host.internal:${port}\r\nConnection: close\r\n\r\n`);
  expect(out.statuses).toEqual([200]);
});

test("a same-origin page's POST through a proxy that rewrites Host is not taken for a cross-site one (Sec-Fetch-Site decides)", async () => {
  const { port } = await canaryProxy('{ host: 127.0.0.1, port: 0, token: s3cret }');
  const out = await rawExchange(port, `POST /routes/search/eject HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: https://ops.example\r\nSec-Fetch-Site: same-origin\r\nAuthorization: Bearer s3cret\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  expect(out.statuses).toEqual([200]);
});
