import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startRawUpstream } from '../helpers/raw-upstream.js';

/** Sends `text` on a fresh connection; resolves once it closes with what came, and how it ended: FIN, or the error code. */
async function sendAndWatch(proxyUrl: string, text: string, onData?: (received: string) => void): Promise<{ received: string; ending: string }> {
  const client = connect(Number(new URL(proxyUrl).port), '127.0.0.1');
  onTestFinished(() => void client.destroy());
  let received = '';
  let ending = 'none';
  client.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    onData?.(received);
  });
  client.on('end', () => (ending = 'FIN'));
  client.on('error', (error: NodeJS.ErrnoException) => (ending = error.code ?? 'error'));
  // Not `once(client, 'close')`: events.once rejects on the 'error' a reset raises.
  const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
  await once(client, 'connect');
  client.write(text);
  await closed;
  return { received, ending };
}

/**
 * An HTTP/1.0 client (nginx's default `proxy_http_version`, ab, many probes) cannot take
 * chunked framing: Node sends it a body that ends with the connection. Cut by a plain close
 * (FIN), such a body is indistinguishable from a complete one (RFC 9112 §6.3 item 8).
 */
test.each([
  ['resets', (s: Socket) => s.resetAndDestroy()],
  ['closes cleanly mid-chunk', (s: Socket) => s.end()],
  ['sends a malformed chunk', (s: Socket) => s.write('zz\r\n')],
])('an upstream that %s mid-body: an HTTP/1.0 client sees its connection reset, never a clean end', async (_name, cut) => {
  const upstream = await startRawUpstream((_req, socket) => {
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => cut(socket), 50);
  });
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const { received, ending } = await sendAndWatch(proxy.app.proxyUrl, 'GET /x HTTP/1.0\r\nHost: a\r\n\r\n');
  // What it got so far, if anything, is a head and "hello" with no length: only the reset tells it apart from a whole answer.
  expect(received).not.toMatch(/content-length|transfer-encoding/i);
  expect(ending).toBe('ECONNRESET');
});

test("a drain's deadline that cuts a response to an HTTP/1.0 client resets its connection", async () => {
  const upstream = await startRawUpstream((_req, socket) => void socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n'));
  const proxy = await startProxy(routesYaml(`drainTimeout: 300ms\nservices:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  let hello: () => void = () => undefined;
  const helloCame = new Promise<void>((resolve) => (hello = resolve));
  const watched = sendAndWatch(proxy.app.proxyUrl, 'GET /x HTTP/1.0\r\nHost: a\r\n\r\n', (received) => received.includes('hello') && hello());
  await helloCame;
  await proxy.app.drain();
  const { ending } = await watched;
  expect(ending).toBe('ECONNRESET');
});

// The relayed refusal of a WebSocket handshake is written without framing (`connection: close`,
// its chunking undone): the same holds for every client there, HTTP/1.1 included.
test.each([
  ['resets', (s: Socket) => s.resetAndDestroy()],
  ['closes cleanly mid-chunk', (s: Socket) => s.end()],
])('a WebSocket refusal whose upstream %s mid-body: the client sees its connection reset', async (_name, cut) => {
  const upstream = await startRawUpstream((_req, socket) => {
    socket.write('HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => cut(socket), 50);
  });
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const { received, ending } = await sendAndWatch(
    proxy.app.proxyUrl,
    'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  expect(received).not.toMatch(/content-length|transfer-encoding/i);
  expect(ending).toBe('ECONNRESET');
});
