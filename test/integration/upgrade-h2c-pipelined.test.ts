import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * README: h2c and other upgrades are served as plain HTTP/1.1, "with whatever followed it (a
 * body, a pipelined request) behind it". Upgrades pipelined in one write on one connection each
 * get their answer, in order, as the same requests without Upgrade do; this holds as well when
 * the answer before an upgrade is written at once (a `respond` route), all out on the wire but
 * not yet finished when Node hands the upgrade over.
 */

const H2C = 'GET PATH HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n';
const PLAIN = 'GET PATH HTTP/1.1\r\nHost: a\r\n\r\n';

async function setup(): Promise<{ port: number; seen: () => string[] }> {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(
      `services:\n  legacy: { url: ${legacy.url} }\nroutes:\n` +
        `  - { name: local, match: { path: /local }, respond: { status: 200, body: 'ok;' } }\n` +
        `  - { name: rest, match: { path: / }, to: legacy }\n`,
    ),
  );
  return { port: Number(new URL(proxy.app.proxyUrl).port), seen: () => legacy.seen.map((s) => s.url) };
}

/** Sends `heads` (PATH filled in with /<where>?n=<i>) in one write; waits for as many whole answers. */
async function pipelined(where: 'local' | 'legacy', heads: string[]): Promise<{ statuses: number[]; timedOut: boolean; closed: boolean; seen: string[] }> {
  const { port, seen } = await setup();
  const bytes = heads.map((head, i) => head.replace('PATH', `/${where}?n=${i + 1}`)).join('');
  // The last answer is whole: the local body ends with ';', the echo's chunked JSON with its last chunk.
  const done = (r: string): boolean => (r.match(/HTTP\/1\.1 \d{3} /g) ?? []).length >= heads.length && /(;|\r\n0\r\n\r\n)$/.test(r);
  const exchange = await rawExchange(port, bytes, { until: done, timeoutMs: 2_000 });
  return { statuses: exchange.statuses, timedOut: exchange.timedOut, closed: exchange.closed, seen: seen() };
}

test.each([
  { kind: 'h2c, h2c, h2c', heads: [H2C, H2C, H2C] },
  { kind: 'plain, h2c, plain', heads: [PLAIN, H2C, PLAIN] },
  { kind: 'h2c, plain, h2c', heads: [H2C, PLAIN, H2C] },
  { kind: 'plain, plain, plain', heads: [PLAIN, PLAIN, PLAIN] },
])('$kind pipelined in one write to a respond route: every request is answered and the connection stays open', async ({ heads }) => {
  const result = await pipelined('local', heads);
  expect(result.timedOut).toBe(false);
  expect(result.closed).toBe(false);
  expect(result.statuses).toEqual([200, 200, 200]);
});

test.each([
  { kind: 'h2c, h2c, h2c', heads: [H2C, H2C, H2C] },
  { kind: 'plain, h2c, plain', heads: [PLAIN, H2C, PLAIN] },
])('$kind pipelined in one write to an upstream: every request is forwarded and answered, in order', async ({ heads }) => {
  const result = await pipelined('legacy', heads);
  expect(result.timedOut).toBe(false);
  expect(result.statuses).toEqual([200, 200, 200]);
  expect(result.seen).toEqual(['/legacy?n=1', '/legacy?n=2', '/legacy?n=3']);
});
