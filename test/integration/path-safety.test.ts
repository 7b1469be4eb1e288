import { once } from 'node:events';
import { connect } from 'node:net';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * SPEC §1.2 over the wire: `/admin` is answered by ficus itself (403), `/public` goes to an
 * upstream. Attack targets are written on a raw socket, byte for byte, so no client library
 * normalizes them first. Whatever reaches the upstream must still be under /public once the
 * upstream decodes and resolves it; anything ficus cannot read one way only is refused with 400.
 */

async function setup(moreRoutes = ''): Promise<{ proxy: TestProxy; upstream: Upstream; port: number }> {
  const upstream = await startUpstream('public');
  const proxy = await startProxy(
    routesYaml(`services:
  public: { url: ${upstream.url} }
routes:
  - { name: admin, match: { path: /admin }, respond: { status: 403, body: internal } }
  - { name: public, match: { path: /public }, to: public }
${moreRoutes}`),
  );
  return { proxy, upstream, port: Number(new URL(proxy.app.proxyUrl).port) };
}

/** One request on its own connection, the target exactly as given; resolves with the status code. */
async function rawStatus(port: number, target: string): Promise<number> {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  let response = '';
  socket.setEncoding('latin1').on('data', (chunk: string) => (response += chunk));
  // Not end(): a half-closed client reads to ficus as one that went away.
  socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  await once(socket, 'close');
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(response);
  if (!status) throw new Error(`no HTTP response to ${JSON.stringify(target)}: ${JSON.stringify(response)}`);
  return Number(status[1]);
}

/** How an upstream that decodes once and resolves dot segments (and "\", and `..;`) reads a path. */
function asUpstreamReads(url: string): string {
  const path = (url.split('?')[0] ?? '').replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const out: string[] = [];
  for (const segment of path.replace(/\\/g, '/').split('/')) {
    const bare = segment.replace(/^(\.\.?);.*$/, '$1');
    if (bare === '..') out.pop();
    else if (bare !== '.' && bare !== '') out.push(bare);
  }
  return `/${out.join('/')}`;
}

test.each<[string, number, string | undefined]>([
  // Traversal that resolves to /admin: answered by the /admin route, never forwarded.
  ['/public/..%2fadmin', 403, undefined],
  ['/public/..%2Fadmin', 403, undefined],
  ['/public/%2e%2e/admin', 403, undefined],
  ['/public/%2E%2e/admin', 403, undefined],
  ['/public/.%2e/admin', 403, undefined],
  ['/public/%2e%2e%2fadmin', 403, undefined],
  ['/public/./../admin', 403, undefined],
  ['//admin', 403, undefined],
  ['/%61dmin', 403, undefined],
  ['http://localhost/public/..%2fadmin', 403, undefined],
  // Ambiguous to some upstream: refused.
  ['/public/..;/admin', 400, undefined],
  ['/public/%2e%2e;/admin', 400, undefined],
  ['/public/..%3b/admin', 400, undefined],
  ['/public/%5c..%5cadmin', 400, undefined],
  ['/public\\..\\admin', 400, undefined],
  ['/public/%00/../admin', 400, undefined],
  ['/public/%zz', 400, undefined],
  ['/public/%', 400, undefined],
  ['*', 400, undefined],
  ['http://user@localhost/public/x', 400, undefined],
  // Under /public: forwarded as normalized, which is what was matched.
  ['/public/ok?x=../admin', 200, '/public/ok?x=../admin'],
  ['/public%2fadmin', 200, '/public/admin'],
  ['/admin%2f..%2fpublic', 200, '/public'],
  ['/public/%252e%252e/admin', 200, '/public/%252e%252e/admin'],
  ['/public/..%252fadmin', 200, '/public/..%252fadmin'],
  ['/public//x/./y/', 200, '/public/x/y/'],
  // Neither route.
  ['/publicity', 404, undefined],
  ['/public/../x', 404, undefined],
])('%s → %d', async (target, status, forwarded) => {
  const { upstream, port } = await setup();
  expect(await rawStatus(port, target)).toBe(status);
  expect(upstream.seen.map((seen) => seen.url)).toEqual(forwarded === undefined ? [] : [forwarded]);
  for (const seen of upstream.seen) expect(asUpstreamReads(seen.url)).toMatch(/^\/public(\/|$)/);
});

/*
 * Path parameters, as a servlet container reads them: `/secret;jsessionid=1` is `/secret`, and
 * `/;x/admin` is `/admin`. A request whose parameters, removed, would pick another route is
 * refused; one whose parameters change nothing is forwarded as it came.
 */
test.each<[string, number, string | undefined]>([
  ['/;/admin/users', 400, undefined],
  ['/;x=1/admin/users', 400, undefined],
  ['/public/..;/admin', 400, undefined],
  ['/secret;jsessionid=1', 400, undefined],
  ['/;/secret', 400, undefined],
  ['/manager;x/html', 400, undefined],
  ['/admin;x', 403, undefined],
  ['/cars;color=red', 200, '/cars;color=red'],
  ['/public/page;v=1', 200, '/public/page;v=1'],
])('%s → %i (path parameters)', async (target, status, forwarded) => {
  const { upstream, port } = await setup(`  - { name: secret, match: { exact: /secret }, respond: { status: 403, body: internal } }
  - { name: manager, match: { path: /manager/ }, respond: { status: 403, body: internal } }
  - { name: rest, match: { path: / }, to: public }
`);
  expect(await rawStatus(port, target)).toBe(status);
  expect(upstream.seen.map((r) => r.url)).toEqual(forwarded === undefined ? [] : [forwarded]);
});
