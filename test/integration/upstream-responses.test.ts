import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { describe, expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { okResponse, startRawUpstream, type RawRequest } from '../helpers/raw-upstream.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * A proxy in front of a raw upstream that answers `/good` well and anything else with `reply`,
 * leaving its socket open: a refusal must come from parsing the bytes, not from an EOF that
 * happens to end the body. Tight timeouts, so that a response that hangs fails fast.
 */
async function hostile(reply: (request: RawRequest, socket: Socket) => void) {
  const upstream = await startRawUpstream((req, socket) => {
    if (req.path === '/good') socket.write(okResponse('good'));
    else reply(req, socket);
  });
  const proxy = await startProxy(
    routesYaml(`timeouts: { response: 1s, idle: 1s }\nservices:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`),
  );
  return { upstream, proxy, port: Number(new URL(proxy.app.proxyUrl).port) };
}

const writes = (bytes: string) => (_req: RawRequest, socket: Socket) => void socket.write(bytes, 'latin1');
const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;
const CHUNKED_HELLO = '5\r\nhello\r\n0\r\n\r\n';

/** The proxy still answers a well-formed exchange on a fresh connection. */
async function stillServes(proxyUrl: string): Promise<void> {
  const res = await request(`${proxyUrl}/good`);
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('good');
}

/** The header lines of the first response head in `response`, lower-cased. */
function headerLines(response: string): string[] {
  return response.slice(0, response.indexOf('\r\n\r\n')).split('\r\n').slice(1).map((line) => line.toLowerCase());
}

const headerNames = (response: string) => headerLines(response).map((line) => line.slice(0, line.indexOf(':')));

describe('a malformed upstream response head gives 502 before any byte reaches the client', () => {
  test.each([
    ['garbage instead of a status line', 'NOT HTTP AT ALL\r\n\r\n'],
    ['letters in the status code', head(['HTTP/1.1 2OO OK', 'content-length: 2']) + 'ok'],
    ['no status code', head(['HTTP/1.1 OK', 'content-length: 2']) + 'ok'],
    ['four-digit status code', head(['HTTP/1.1 1000 Nope', 'content-length: 2']) + 'ok'],
    ['two-digit status code', head(['HTTP/1.1 99 Low', 'content-length: 2']) + 'ok'],
    ['no space after the version', head(['HTTP/1.1200 OK', 'content-length: 2']) + 'ok'],
    ['unknown protocol version', head(['HTTP/3.7 200 OK', 'content-length: 2']) + 'ok'],
    ['Content-Length then Transfer-Encoding', head(['HTTP/1.1 200 OK', 'content-length: 5', 'transfer-encoding: chunked']) + CHUNKED_HELLO],
    ['Transfer-Encoding then Content-Length', head(['HTTP/1.1 200 OK', 'transfer-encoding: chunked', 'content-length: 5']) + CHUNKED_HELLO],
    ['two differing Content-Lengths', head(['HTTP/1.1 200 OK', 'content-length: 5', 'content-length: 6']) + 'hello!'],
    ['two equal Content-Lengths', head(['HTTP/1.1 200 OK', 'content-length: 5', 'content-length: 5']) + 'hello'],
    ['a Content-Length list', head(['HTTP/1.1 200 OK', 'content-length: 5, 5']) + 'hello'],
    ['a negative Content-Length', head(['HTTP/1.1 200 OK', 'content-length: -1']) + 'hello'],
    ['xchunked with Content-Length', head(['HTTP/1.1 200 OK', 'transfer-encoding: xchunked', 'content-length: 5']) + 'hello'],
    ['space before the colon of Transfer-Encoding', head(['HTTP/1.1 200 OK', 'transfer-encoding : chunked']) + CHUNKED_HELLO],
    ['obs-fold continuation of Transfer-Encoding', head(['HTTP/1.1 200 OK', 'transfer-encoding:', ' chunked']) + CHUNKED_HELLO],
    // nginx answers 502 to any Transfer-Encoding but a single `chunked` ("upstream sent unknown
    // Transfer-Encoding" / "duplicate header line"). undici would read these until the upstream
    // closes and pass the raw chunk framing on as the body.
    ['xchunked', head(['HTTP/1.1 200 OK', 'transfer-encoding: xchunked']) + CHUNKED_HELLO],
    ['"chunked" quoted', head(['HTTP/1.1 200 OK', 'transfer-encoding: "chunked"']) + CHUNKED_HELLO],
    ['chunked, identity', head(['HTTP/1.1 200 OK', 'transfer-encoding: chunked, identity']) + CHUNKED_HELLO],
    ['chunked then identity on two lines', head(['HTTP/1.1 200 OK', 'transfer-encoding: chunked', 'transfer-encoding: identity']) + CHUNKED_HELLO],
    ['chunked followed by a tab', head(['HTTP/1.1 200 OK', 'transfer-encoding: chunked\t']) + CHUNKED_HELLO],
    ['chunked on two lines', head(['HTTP/1.1 200 OK', 'transfer-encoding: chunked', 'transfer-encoding: chunked']) + CHUNKED_HELLO],
    // A transfer coding ficus would strip with the header, passing the coded bytes on as if plain.
    ['gzip, chunked', head(['HTTP/1.1 200 OK', 'transfer-encoding: gzip, chunked']) + CHUNKED_HELLO],
    ['NUL in a header value', head(['HTTP/1.1 200 OK', 'x-bad: a\0b', 'content-length: 2']) + 'ok'],
    ['bare CR in a header value', head(['HTTP/1.1 200 OK', 'x-bad: a\rb', 'content-length: 2']) + 'ok'],
    ['DEL in a header value', head(['HTTP/1.1 200 OK', 'x-bad: a\x7fb', 'content-length: 2']) + 'ok'],
    ['space inside a header name', head(['HTTP/1.1 200 OK', 'x bad: 1', 'content-length: 2']) + 'ok'],
    ['bare LF line endings', 'HTTP/1.1 200 OK\ncontent-length: 2\n\nok'],
    // ficus leaves undici's response header limit at its default, Node's 16 KiB.
    ['a header section over 16 KiB', head(['HTTP/1.1 200 OK', `x-big: ${'a'.repeat(17_000)}`, 'content-length: 2']) + 'ok'],
  ])('%s', async (_name, bytes) => {
    const { proxy, port } = await hostile(writes(bytes));
    const out = await rawExchange(port, 'GET /bad HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(out.closed).toBe(true);
    expect(out.statuses).toEqual([502]);
    expect(JSON.parse(out.response.slice(out.response.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 502, error: 'bad gateway' });
    await stillServes(proxy.app.proxyUrl);
  });

  test('a header section just under 16 KiB passes', async () => {
    const value = 'a'.repeat(15_000);
    const { port } = await hostile(writes(head(['HTTP/1.1 200 OK', `x-big: ${value}`, 'content-length: 2']) + 'ok'));
    const out = await rawExchange(port, 'GET /big HTTP/1.1\r\nHost: x\r\n\r\n', { until: (r) => r.endsWith('\r\n\r\nok') });
    expect(out.statuses).toEqual([200]);
    expect(out.response).toContain(`\r\nx-big: ${value}\r\n`);
  });
});

describe('a response whose body turns out malformed is cut off, never passed on as complete', () => {
  const chunkedHead = head(['HTTP/1.1 200 OK', 'transfer-encoding: chunked']);
  test.each([
    ['invalid chunk size', `${chunkedHead}5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n`],
    ['chunk size over 64 bits', `${chunkedHead}5\r\nhello\r\nfffffffffffffffff1\r\nworld\r\n0\r\n\r\n`],
    ['chunk data longer than its size', `${chunkedHead}5\r\nhelloXX\r\n0\r\n\r\n`],
    ['bare LF after a chunk size', `${chunkedHead}5\r\nhello\r\n5\nworld\r\n0\r\n\r\n`],
    ['control byte in a chunk extension', `${chunkedHead}5\r\nhello\r\n5;a=\x01\r\nworld\r\n0\r\n\r\n`],
  ])('%s', async (_name, bytes) => {
    const { proxy, port } = await hostile(writes(bytes));
    const out = await rawExchange(port, 'GET /bad HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(out.closed).toBe(true);
    // Either nothing at all (the head never left) or a head and a body without its last chunk.
    expect(out.statuses.filter((s) => s !== 200)).toEqual([]);
    expect(out.response).not.toContain('\r\n0\r\n\r\n');
    expect(out.response).not.toContain('world');
    await stillServes(proxy.app.proxyUrl);
  });
});

describe('hop-by-hop response headers and trailers are stripped without harm', () => {
  const hopByHop = [
    'Connection: X-Up-Hop, keep-alive',
    'X-Up-Hop: 1',
    'Keep-Alive: timeout=5',
    'Proxy-Authenticate: Basic',
    'Upgrade: h2c',
    'Trailer: x-t',
    'X-Kept: yes',
  ];
  /** The upstream's hop-by-hop lines; the edge sets its own Connection and Keep-Alive. */
  const STRIPPED = ['connection: x-up-hop, keep-alive', 'x-up-hop: 1', 'keep-alive: timeout=5', 'proxy-authenticate: basic', 'upgrade: h2c', 'trailer: x-t', 'x-t: 1'];

  test('a chunked response with trailers, and the next request on the same client connection', async () => {
    const { port } = await hostile(writes(head(['HTTP/1.1 200 OK', ...hopByHop, 'Transfer-Encoding: chunked']) + '5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n'));
    const client = await rawClient(port);
    client.send('GET /hop HTTP/1.1\r\nHost: x\r\n\r\n');
    const first = await client.next((r) => r.endsWith('\r\n0\r\n\r\n'));
    expect(first).toMatch(/^HTTP\/1\.1 200 /);
    const lines = headerLines(first);
    for (const line of STRIPPED) expect(lines).not.toContain(line);
    expect(lines).toContain('x-kept: yes');
    // The trailer section is the upstream's hop-by-hop business: the client's body ends bare.
    expect(first.slice(first.indexOf('\r\n\r\n') + 4)).toBe(CHUNKED_HELLO);
    client.send('GET /good HTTP/1.1\r\nHost: x\r\n\r\n');
    const second = await client.next((r) => r.endsWith('good'));
    expect(second).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\ngood$/);
  });

  // An HTTP/1.0 client cannot take chunked trailers: a proxy that copied `Trailer` would make
  // Node throw (ERR_HTTP_TRAILER_INVALID), the crash http-proxy is known for.
  test.each([
    ['chunked with trailers', 'Transfer-Encoding: chunked', '5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n'],
    ['with a Content-Length', 'Content-Length: 5', 'hello'],
  ])('a response %s to an HTTP/1.0 client', async (_name, framing, body) => {
    const { proxy, port } = await hostile(writes(head(['HTTP/1.1 200 OK', ...hopByHop, framing]) + body));
    const out = await rawExchange(port, 'GET /hop HTTP/1.0\r\nHost: x\r\n\r\n');
    expect(out.closed).toBe(true);
    expect(out.statuses).toEqual([200]);
    const lines = headerLines(out.response);
    for (const line of STRIPPED) expect(lines).not.toContain(line);
    expect(lines).toContain('x-kept: yes');
    expect(out.response.slice(out.response.indexOf('\r\n\r\n') + 4)).toBe('hello');
    await stillServes(proxy.app.proxyUrl);
  });
});

describe('HEAD, 204 and 304 responses reach the client without a body, whatever the upstream sends', () => {
  test.each([
    ['HEAD answered with a Content-Length body', 'HEAD', head(['HTTP/1.1 200 OK', 'content-length: 5']) + 'hello', 200],
    ['HEAD answered with a chunked body', 'HEAD', head(['HTTP/1.1 200 OK', 'transfer-encoding: chunked']) + CHUNKED_HELLO, 200],
    ['204 followed by body bytes', 'GET', head(['HTTP/1.1 204 No Content']) + 'hello', 204],
    ['204 with a Content-Length and a body', 'GET', head(['HTTP/1.1 204 No Content', 'content-length: 5']) + 'hello', 204],
    ['204 with a chunked body', 'GET', head(['HTTP/1.1 204 No Content', 'transfer-encoding: chunked']) + CHUNKED_HELLO, 204],
    // RFC 9110 §8.6: a 304 may carry the Content-Length of the representation it stands for.
    ['304 with a Content-Length and no body', 'GET', head(['HTTP/1.1 304 Not Modified', 'content-length: 5']), 304],
    ['304 with a Content-Length and a body', 'GET', head(['HTTP/1.1 304 Not Modified', 'content-length: 5']) + 'hello', 304],
    ['304 with a chunked body', 'GET', head(['HTTP/1.1 304 Not Modified', 'transfer-encoding: chunked']) + CHUNKED_HELLO, 304],
  ])('%s; the next request on the same client connection is answered', async (_name, method, bytes, status) => {
    const { port } = await hostile(writes(bytes));
    const client = await rawClient(port);
    client.send(`${method} /bodyless HTTP/1.1\r\nHost: x\r\n\r\n`);
    const first = await client.next((r) => r.includes('\r\n\r\n'));
    expect(first).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(first.slice(first.indexOf('\r\n\r\n') + 4)).toBe('');
    // RFC 9110 §8.6: never a Content-Length on a 204, which a lax client might read a body by.
    if (status === 204) expect(headerNames(first)).not.toContain('content-length');
    client.send('GET /good HTTP/1.1\r\nHost: x\r\n\r\n');
    // A body leaked from the first response would arrive ahead of this one.
    const second = await client.next((r) => r.endsWith('good'));
    expect(second).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\ngood$/);
    expect(client.closed).toBe(false);
  });
});

/**
 * One client connection driven step by step: `send` writes, `next` waits until what arrived
 * since the last `next` satisfies `until` (or the connection closes, or the deadline passes)
 * and returns it.
 */
async function rawClient(port: number) {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  let pending = '';
  let closed = false;
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1');
    wake?.();
  });
  socket.on('close', () => {
    closed = true;
    wake?.();
  });
  return {
    send: (bytes: string) => void socket.write(bytes, 'latin1'),
    async next(until: (received: string) => boolean, timeoutMs = 2_000): Promise<string> {
      let expired = false;
      const deadline = setTimeout(() => {
        expired = true;
        wake?.();
      }, timeoutMs);
      while (!until(pending) && !closed && !expired) await new Promise<void>((resolve) => (wake = resolve));
      clearTimeout(deadline);
      wake = undefined;
      const got = pending;
      pending = '';
      return got;
    },
    get closed() {
      return closed;
    },
  };
}

describe('reason phrases', () => {
  test.each([
    ['Latin-1 (obs-text)', Buffer.from('HTTP/1.1 404 N\xe3o encontrado\r\ncontent-length: 5\r\n\r\nnope\n', 'latin1'), 'HTTP/1.1 404 Not Found'],
    ['UTF-8 beyond Latin-1', Buffer.from('HTTP/1.1 200 Tr\u00e8s bien \u20ac\r\ncontent-length: 5\r\n\r\nnope\n', 'utf8'), 'HTTP/1.1 200 OK'],
    ['plain ASCII, kept', Buffer.from('HTTP/1.1 200 Very Fine\r\ncontent-length: 5\r\n\r\nnope\n', 'latin1'), 'HTTP/1.1 200 Very Fine'],
  ])('%s: relayed with its status and body, the reason made sendable, never a client left waiting', async (_name, bytes, statusLine) => {
    const { proxy, port } = await hostile((_req, socket) => void socket.write(bytes));
    const out = await rawExchange(port, 'GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', { timeoutMs: 3_000 });
    expect(out.timedOut).toBe(false);
    expect(out.response.split('\r\n')[0]).toBe(statusLine);
    expect(out.response.endsWith('\r\n\r\nnope\n')).toBe(true);
    await stillServes(proxy.app.proxyUrl);
  });
});

test('an unsolicited 100 Continue is a 502 counted as a protocol error, and the request is not sent again', async () => {
  const { upstream, proxy, port } = await hostile(writes('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello'));
  const out = await rawExchange(port, 'GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', { timeoutMs: 3_000 });
  expect(out.statuses).toEqual([502]);
  // A GET is retried on a reset, but this upstream had the request: it must see it once.
  expect(upstream.seen.map((r) => r.path)).toEqual(['/x']);
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain('ficus_upstream_errors_total{service="legacy",kind="protocol"} 1');
});

// SPEC §1.7: no first byte within `timeouts.response` → 504. undici restarts its wait for the
// head at every interim answer, so an upstream that sends `102 Processing` (or 103) heartbeats
// and never answers held the client, which receives none of them, for as long as it liked.
test('interim 1xx answers do not stretch timeouts.response: 504 once it has passed, the GET sent once', async () => {
  const upstream = await startRawUpstream((_req, socket) => {
    const beat = setInterval(() => (socket.destroyed ? clearInterval(beat) : socket.write('HTTP/1.1 102 Processing\r\n\r\n')), 150);
  });
  const proxy = await startProxy(routesYaml(`timeouts: { response: 500ms }\nservices:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const started = performance.now();
  const res = await request(`${proxy.app.proxyUrl}/slow`, { headersTimeout: 5_000 });
  expect(res.statusCode).toBe(504);
  await res.body.dump();
  expect(performance.now() - started).toBeLessThan(2_000);
  expect(upstream.seen).toHaveLength(1);
});

test('an interim answer followed in time by the final one is served', async () => {
  const upstream = await startRawUpstream((_req, socket) => {
    socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n');
    setTimeout(() => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'), 200);
  });
  const proxy = await startProxy(routesYaml(`timeouts: { response: 500ms }\nservices:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const res = await request(`${proxy.app.proxyUrl}/x`);
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('ok');
});

test('an interim answer during a slow upload is timed from the upload\'s end, as the head is: a body longer than timeouts.response is no 504', async () => {
  // The upstream says 102 on the head, then reads a body that takes 1.2 s against a 500 ms response timeout.
  const upstream = await startUpstream('slow-body', (req, res) => {
    res.writeProcessing();
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const proxy = await startProxy(routesYaml(`timeouts: { response: 500ms }\nservices:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const body = new PassThrough();
  const pending = request(`${proxy.app.proxyUrl}/upload`, { method: 'POST', body, headers: { 'content-length': '6' } });
  for (const part of ['ab', 'cd', 'ef']) {
    body.write(part);
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
  body.end();
  const res = await pending;
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('ok');
});
