import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Blue/green routing on the live proxy: the active colour serves, the preview header with the
 * right token reaches the other one, and the token never leaves ficus.
 */
const TOKEN = 'pr3view-s3cret';

interface Setup {
  proxy: TestProxy;
  blue: Upstream;
  green: Upstream;
  legacy: Upstream;
}

async function setup(active: string, preview = `{ header: X-Orders-Preview, token: "${TOKEN}" }`, routes = ''): Promise<Setup> {
  const [blue, green, legacy] = [await startUpstream('blue'), await startUpstream('green'), await startUpstream('legacy')];
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services:
  legacy: { url: ${legacy.url} }
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url}/v2 }
    active: ${active}
    preview: ${preview}
routes:
${routes}  - { name: orders, match: { path: /orders }, to: orders }
  - { name: rest, match: { path: / }, to: legacy }
`),
  );
  return { proxy, blue, green, legacy };
}

async function get(proxy: TestProxy, path: string, headers: Record<string, string> = {}): Promise<{ name: string; url: string; headers: Record<string, string> }> {
  const res = await request(`${proxy.app.proxyUrl}${path}`, { headers });
  expect(res.statusCode).toBe(200);
  return (await res.body.json()) as { name: string; url: string; headers: Record<string, string> };
}

test.each<{ case: string; active: string; headers: Record<string, string>; served: string }>([
  { case: 'no preview header', active: 'blue', headers: {}, served: 'blue' },
  { case: 'no preview header', active: 'green', headers: {}, served: 'green' },
  { case: 'the right token', active: 'blue', headers: { 'x-orders-preview': TOKEN }, served: 'green' },
  { case: 'the right token, header name in another case', active: 'green', headers: { 'X-Orders-Preview': TOKEN }, served: 'blue' },
  { case: 'a wrong token', active: 'blue', headers: { 'x-orders-preview': 'wrong' }, served: 'blue' },
  { case: 'the token with a character more', active: 'green', headers: { 'x-orders-preview': `${TOKEN}!` }, served: 'green' },
])('active $active, $case: served by $served', async ({ active, headers, served }) => {
  const { proxy } = await setup(active);
  const body = await get(proxy, '/orders/7?q=1', headers);
  expect(body.name).toBe(served);
  // Each colour keeps its own URL's base path.
  expect(body.url).toBe(served === 'green' ? '/v2/orders/7?q=1' : '/orders/7?q=1');
});

test('an empty token disables preview: the right header with any value reaches the active colour', async () => {
  const { proxy } = await setup('blue', '{ header: x-orders-preview, token: "" }');
  expect((await get(proxy, '/orders', { 'x-orders-preview': '' })).name).toBe('blue');
  expect((await get(proxy, '/orders', { 'x-orders-preview': 'x' })).name).toBe('blue');
});

test('the preview header is never forwarded, right token or wrong, to any service', async () => {
  const { proxy, blue, green, legacy } = await setup('blue');
  await get(proxy, '/orders', { 'x-orders-preview': TOKEN });
  await get(proxy, '/orders', { 'X-ORDERS-PREVIEW': 'wrong' });
  await get(proxy, '/elsewhere', { 'x-orders-preview': TOKEN });
  await get(proxy, '/orders', { 'x-orders-preview-not': 'kept' });
  const seen = [...green.seen, ...blue.seen, ...legacy.seen];
  expect(seen).toHaveLength(4);
  for (const request of seen) expect(request.rawHeaders.map((h) => h.toLowerCase())).not.toContain('x-orders-preview');
  for (const request of seen) expect(request.rawHeaders.join('\n')).not.toContain(TOKEN);
  // A header merely starting with the same name is someone else's.
  expect(blue.seen.at(-1)?.headers['x-orders-preview-not']).toBe('kept');
});

test("a canary's service can be blue/green: its colour is chosen after the split", async () => {
  const { proxy } = await setup('green', undefined, '  - { name: shop, match: { path: /shop }, to: legacy, canary: { to: orders, weight: 100 } }\n');
  expect((await get(proxy, '/shop', { 'x-user-id': 'alice' })).name).toBe('green');
  expect((await get(proxy, '/shop', { 'x-user-id': 'alice', 'x-orders-preview': TOKEN })).name).toBe('blue');
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain('ficus_requests_total{route="shop",service="orders",color="green",side="canary",code="200"} 1');
  expect(metrics).toContain('ficus_requests_total{route="shop",service="orders",color="blue",side="canary",code="200"} 1');
});

test('metrics and the access log name the colour; plain services have none', async () => {
  const { proxy, blue, green } = await setup('blue');
  await get(proxy, '/orders/a');
  await get(proxy, '/orders/b');
  await get(proxy, '/orders/c', { 'x-orders-preview': TOKEN });
  await get(proxy, '/other');
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain('ficus_requests_total{route="orders",service="orders",color="blue",side="stable",code="200"} 2');
  expect(metrics).toContain('ficus_requests_total{route="orders",service="orders",color="green",side="stable",code="200"} 1');
  expect(metrics).toContain('ficus_requests_total{route="rest",service="legacy",color="",side="stable",code="200"} 1');

  const access = proxy.logs.filter((line) => line.event === 'access');
  expect(access.map((line) => [line.path, line.service, line.color, line.preview, line.endpoint])).toEqual([
    ['/orders/a', 'orders', 'blue', undefined, blue.url],
    ['/orders/b', 'orders', 'blue', undefined, blue.url],
    ['/orders/c', 'orders', 'green', true, green.url],
    ['/other', 'legacy', undefined, undefined, expect.any(String)],
  ]);
  // The token is a secret: it appears in no log line.
  expect(JSON.stringify(proxy.logs)).not.toContain(TOKEN);
});

test('a token with non-ASCII characters opens preview when a client sends it as UTF-8, as `ficus explain -H` reads it', async () => {
  const { proxy } = await setup('blue', '{ header: x-orders-preview, token: "café-2024" }');
  // What curl sends from a UTF-8 terminal: the bytes of UTF-8, which Node reads one per character.
  const utf8OnTheWire = Buffer.from('café-2024', 'utf8').toString('latin1');
  expect((await get(proxy, '/orders', { 'x-orders-preview': utf8OnTheWire })).name).toBe('green');
  expect((await get(proxy, '/orders', { 'x-orders-preview': 'cafe-2024' })).name).toBe('blue');
});

test('preview requests to a canary service’s colour that serves nobody are not the canary’s evidence: failing ones eject nothing', async () => {
  const [legacy, blue] = [await startUpstream('legacy'), await startUpstream('next-blue')];
  const green = await startUpstream('next-green', (_req, res) => void res.writeHead(500).end('not ready'));
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services:
  legacy: { url: ${legacy.url} }
  search-next:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: blue
    preview: { header: x-preview, token: "${TOKEN}" }
routes:
  - name: search
    match: { path: /search }
    to: legacy
    canary: { to: search-next, weight: 100, analysis: { consecutiveFailures: 3, interval: 1s } }
`),
  );
  for (let i = 0; i < 3; i++) {
    const res = await request(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': 'qa', 'x-preview': TOKEN } });
    expect(res.statusCode).toBe(500);
    await res.body.dump();
  }
  expect(proxy.logs.filter((l) => l.event === 'canary.ejected')).toEqual([]);
  expect((await get(proxy, '/search', { 'x-user-id': 'user1' })).name).toBe('next-blue');
  const status = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { routes: { name: string; state?: string }[] };
  expect(status.routes.find((r) => r.name === 'search')?.state).toBe('running');
});
