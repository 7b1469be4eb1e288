import { describe, expect, test } from 'vitest';
import { startProxy, routesYaml, type TestProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Appended to every rejected case: under one reading of the ambiguous framing these bytes are
 * body, under another a second request. The upstream must never see it.
 */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
const post = (lines: string[], version = '1.1') => `POST /a HTTP/${version}\r\nHost: x\r\n${lines.join('\r\n')}\r\n\r\n`;
const chunked = post(['Transfer-Encoding: chunked']);

async function edge(): Promise<{ upstream: Upstream; proxy: TestProxy; port: number }> {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`services:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: legacy\n`),
  );
  return { upstream, proxy, port: Number(new URL(proxy.app.proxyUrl).port) };
}

describe('ambiguous or malformed framing is refused with 400 and the connection closed', () => {
  test.each([
    ['Content-Length then Transfer-Encoding', post(['Content-Length: 40', 'Transfer-Encoding: chunked']) + '0\r\n\r\n' + SMUGGLED],
    ['Transfer-Encoding then Content-Length', post(['Transfer-Encoding: chunked', 'Content-Length: 40']) + '0\r\n\r\n' + SMUGGLED],
    ['duplicate differing Content-Length', post(['Content-Length: 5', 'Content-Length: 40']) + 'hello' + SMUGGLED],
    ['duplicate equal Content-Length', post(['Content-Length: 5', 'Content-Length: 5']) + 'hello' + SMUGGLED],
    ['list Content-Length 5, 5', post(['Content-Length: 5, 5']) + 'hello' + SMUGGLED],
    ['list Content-Length 5, 6', post(['Content-Length: 5, 6']) + 'hello' + SMUGGLED],
    ['"chunked " (trailing space) with Content-Length', post(['Content-Length: 3', 'Transfer-Encoding: chunked ']) + '0\r\n\r\n' + SMUGGLED],
    ['tabs around chunked', post(['Transfer-Encoding: \tchunked\t']) + '0\r\n\r\n' + SMUGGLED],
    ['xchunked', post(['Transfer-Encoding: xchunked']) + '0\r\n\r\n' + SMUGGLED],
    ['xchunked with Content-Length', post(['Content-Length: 5', 'Transfer-Encoding: xchunked']) + '0\r\n\r\n' + SMUGGLED],
    ['chunked, identity', post(['Transfer-Encoding: chunked, identity']) + '0\r\n\r\n' + SMUGGLED],
    ['quoted "chunked"', post(['Transfer-Encoding: "chunked"']) + '0\r\n\r\n' + SMUGGLED],
    ['obs-fold continuation of Transfer-Encoding', post(['Transfer-Encoding:', ' chunked']) + '0\r\n\r\n' + SMUGGLED],
    ['obs-fold line that looks like Transfer-Encoding', post(['X-A: 1', ' Transfer-Encoding: chunked']) + '0\r\n\r\n' + SMUGGLED],
    ['Transfer-Encoding twice', post(['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']) + '0\r\n\r\n' + SMUGGLED],
    ['chunk size zz', chunked + 'zz\r\nhello\r\n0\r\n\r\n' + SMUGGLED],
    ['chunk size -1', chunked + '-1\r\nhello\r\n0\r\n\r\n' + SMUGGLED],
    ['chunk size over 64 bits', chunked + 'fffffffffffffffff1\r\nhello\r\n0\r\n\r\n' + SMUGGLED],
    ['chunk size 0x prefix', chunked + '0x5\r\nhello\r\n0\r\n\r\n' + SMUGGLED],
    ['control byte in a chunk extension', chunked + '5;a=\x01\r\nhello\r\n0\r\n\r\n' + SMUGGLED],
    ['bare LF ending a chunk extension', chunked + '5;a\nhello\r\n0\r\n\r\n' + SMUGGLED],
    ['chunk data longer than its size', chunked + '5\r\nhelloXX0\r\n\r\n' + SMUGGLED],
    ['bare LF line endings', 'GET /a HTTP/1.1\nHost: x\n\n' + SMUGGLED],
    ['bare LF ending one header line', 'GET /a HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n' + SMUGGLED],
    ['bare CR inside the head', 'GET /a HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n' + SMUGGLED],
    ['NUL in a header value', 'GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n' + SMUGGLED],
    ['space before the colon', 'GET /a HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n' + SMUGGLED],
    ['space before the colon of Transfer-Encoding', post(['Transfer-Encoding : chunked']) + '0\r\n\r\n' + SMUGGLED],
    ['missing Host on HTTP/1.1', 'GET /a HTTP/1.1\r\nX-A: 1\r\n\r\n' + SMUGGLED],
    // RFC 9112 §3.2: more than one Host line, or one that is no host[:port], is a 400.
    ['duplicate Host', 'GET /a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n' + SMUGGLED],
    ['Host with a path in it', 'GET /a HTTP/1.1\r\nHost: a.test/admin\r\n\r\n' + SMUGGLED],
    ['Host with userinfo', 'GET /a HTTP/1.1\r\nHost: user@a.test\r\n\r\n' + SMUGGLED],
  ])('%s', async (_name, bytes) => {
    const { upstream, port } = await edge();
    const out = await rawExchange(port, bytes);
    expect(out.closed).toBe(true);
    expect(out.statuses).toEqual([400]);
    expect(out.response).toMatch(/\r\nconnection: close\r\n/i);
    // Bodies stream: when the error lies in the body, the head may already be on its way
    // upstream (its body is then aborted). The request behind it must never get there.
    expect(upstream.seen.map((s) => `${s.method} ${s.url}`)).toEqual(upstream.seen.length ? ['POST /a'] : []);
  });
});

describe('accepted heads reach the upstream as exactly one well-formed request', () => {
  const body = '5\r\nhello\r\n0\r\n\r\n';
  test.each([
    // RFC 9110 §5.5: optional whitespace around a field value is not part of it.
    ['"chunked " (trailing space) alone', post(['Transfer-Encoding: chunked ']) + body, { url: '/a', host: 'x', bytes: 5 }],
    ['tab before chunked', post(['Transfer-Encoding:\tchunked']) + body, { url: '/a', host: 'x', bytes: 5 }],
    ['a well-formed chunk extension', chunked + '5;a=b\r\nhello\r\n0\r\n\r\n', { url: '/a', host: 'x', bytes: 5 }],
    // RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host.
    ['absolute-form target', 'GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n', { url: '/abs?q=1', host: 'example.com', bytes: 0 }],
    // Node keeps the first Host; ficus sends the upstream only the one it routed on.
  ])('%s', async (_name, bytes, expected) => {
    const { upstream, port } = await edge();
    const out = await rawExchange(port, bytes, { until: (r) => r.endsWith('}') || r.endsWith('\r\n0\r\n\r\n') });
    expect(out.statuses).toEqual([200]);
    expect(upstream.seen).toHaveLength(1);
    const seen = upstream.seen[0]!;
    expect(seen.url).toBe(expected.url);
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => n === 'host')).toEqual(['host']);
    expect(seen.headers.host).toBe(expected.host);
    expect(names.filter((n) => n === 'content-length' || n === 'transfer-encoding').length).toBeLessThanOrEqual(1);
    const echoed = JSON.parse(bodyOf(out.response)) as { bytes: number };
    expect(echoed.bytes).toBe(expected.bytes);
  });
});

/** The body of a single raw response, de-chunked when it is chunked. */
function bodyOf(response: string): string {
  const split = response.indexOf('\r\n\r\n');
  const rest = response.slice(split + 4);
  if (!/\r\ntransfer-encoding: chunked\r\n/i.test(response.slice(0, split + 2))) return rest;
  let body = '';
  for (let at = 0; ; ) {
    const eol = rest.indexOf('\r\n', at);
    const size = parseInt(rest.slice(at, eol), 16);
    if (!size) return body;
    body += rest.slice(eol + 2, eol + 2 + size);
    at = eol + 4 + size;
  }
}

test('a request without Host behind a good one is refused, and nothing pipelined after it reaches the upstream', async () => {
  const { upstream, proxy, port } = await edge();
  const bytes = 'GET /ok HTTP/1.1\r\nHost: x\r\n\r\n' + 'GET /no-host HTTP/1.1\r\nX-A: 1\r\n\r\n' + SMUGGLED;
  const out = await rawExchange(port, bytes);
  expect(out.closed).toBe(true);
  expect(out.statuses).toEqual([200, 400]);
  expect(upstream.seen.map((s) => s.url)).toEqual(['/ok']);
  // Nothing was left in flight: drain returns at once rather than after its timeout.
  const started = performance.now();
  await proxy.app.drain();
  expect(performance.now() - started).toBeLessThan(1_000);
});

test('a request refused for its Host carries the request id its client sent, as every other answer does', async () => {
  const { port } = await edge();
  const out = await rawExchange(port, 'GET /a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nX-Request-Id: trace-7f3a\r\n\r\n', { until: (r) => r.endsWith('}') });
  expect(out.statuses).toEqual([400]);
  expect(out.response).toMatch(/\r\nx-request-id: trace-7f3a\r\n/i);
});
