import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream } from '../helpers/upstream.js';

/** Body under one reading of the framing, a second request under another. */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
const CHUNKED_BODY = '5\r\nhello\r\n0\r\n\r\n';

async function edge() {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  return { upstream, port: Number(new URL(proxy.app.proxyUrl).port) };
}

// RFC 9112 §6.1: a server that receives Transfer-Encoding in an HTTP/1.0 request MUST treat
// the message as having faulty framing and close the connection after answering.
test.each([
  ['chunked, nothing after it', `POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`],
  ['chunked with keep-alive and a request behind it', `POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}${SMUGGLED}`],
  ['chunked on a GET', `GET /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['chunked without Host', `POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`],
  ['gzip, chunked', `POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${CHUNKED_BODY}`],
  ['identity', `POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nhello`],
  ['chunked with Content-Length', `POST /a HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`],
])('Transfer-Encoding on HTTP/1.0 (%s) → 400, connection closed, nothing forwarded', async (_name, bytes) => {
  const { upstream, port } = await edge();
  const out = await rawExchange(port, bytes);
  expect(out.closed).toBe(true);
  expect(out.statuses).toEqual([400]);
  expect(out.response).toMatch(/\r\nconnection: close\r\n/i);
  expect(upstream.seen).toEqual([]);
});

test.each([
  ['a Content-Length body', 'POST /a HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', { method: 'POST', bytes: 5 }],
  ['no Host and no body', 'GET /a HTTP/1.0\r\n\r\n', { method: 'GET', bytes: 0 }],
])('an HTTP/1.0 request with %s still passes', async (_name, bytes, expected) => {
  const { upstream, port } = await edge();
  const out = await rawExchange(port, bytes);
  expect(out.closed).toBe(true);
  expect(out.statuses).toEqual([200]);
  expect(upstream.seen.map((s) => `${s.method} ${s.url}`)).toEqual([`${expected.method} /a`]);
  expect(JSON.parse(out.response.slice(out.response.indexOf('\r\n\r\n') + 4))).toMatchObject({ bytes: expected.bytes });
});
