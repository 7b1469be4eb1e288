import { once } from 'node:events';
import { connect } from 'node:net';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { refusedPort } from '../helpers/upstream.js';
import { encodeFrame, heldWsUpstream, OP, portOf, startWsUpstream, wsConnect } from '../helpers/websocket.js';

/** A WebSocket handshake retried on another endpoint carries what the client sent behind it, and still hears the client leave. */

/** Resolves with `what` when `promise` settles within `ms`, with 'pending' otherwise. */
function within<T>(promise: Promise<unknown>, ms: number, what: T): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  return Promise.race([promise.then(() => what), late]).finally(() => clearTimeout(timer));
}

const UPGRADE = 'GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

test('frames a client sent behind its handshake reach the endpoint the handshake was retried on', async () => {
  const chat = await startWsUpstream('chat');
  const dead = await refusedPort();
  const proxy = await startProxy(routesYaml(`services:\n  chat: { urls: [${chat.url}, http://127.0.0.1:${dead}] }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  // Round-robin: one of two handshakes goes first to the endpoint that refuses.
  for (let i = 0; i < 2; i++) {
    const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat', {}, encodeFrame(OP.text, `early ${i}`, true));
    expect(client.status).toBe(101);
    expect((await client.next(1_500)).payload.toString()).toBe(`early ${i}`);
    client.socket.destroy();
  }
});

test('a client that hangs up while the endpoint its handshake was retried on thinks takes that connection down at once', async () => {
  const { upstream: chat, next } = await heldWsUpstream('chat');
  const dead = await refusedPort();
  const proxy = await startProxy(routesYaml(`services:\n  chat: { urls: [${chat.url}, http://127.0.0.1:${dead}], timeouts: { response: 4s } }\nroutes:\n  - { name: chat, match: { path: /chat }, to: chat }\n`));
  // Round-robin: one of the two handshakes reaches the held upstream on its retry.
  for (let i = 0; i < 2; i++) {
    const arrived = next();
    const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1' });
    onTestFinished(() => void client.destroy());
    client.on('error', () => undefined);
    client.write(UPGRADE);
    const upstream = await arrived;
    // A frame while the upstream thinks, then the client hangs up: the frame must be read for
    // the hang-up behind it to be seen.
    client.end(encodeFrame(OP.text, 'bye', true));
    // Not held for timeouts.response (4 s).
    expect(await within(once(upstream.socket, 'close'), 1_000, 'closed')).toBe('closed');
  }
});
