import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { CLOSE_GRACE_MS } from '../../src/proxy/ws-upgrade.js';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { closePayload, encodeFrame, OP, portOf, startWsUpstream, wsConnect, type Frame, type WsClient, type WsUpstream } from '../helpers/websocket.js';

/**
 * Issue 5 item 4: an open WebSocket tunnel is not dropped by a reload that leaves its route and
 * its endpoint alone; one whose route moved is closed cleanly (Close 1001 both ways, each at a
 * frame boundary); a drain closes every tunnel the same way and finishes promptly.
 */

function config(chat: WsUpstream, other: WsUpstream, options: { chatTo?: string; extra?: string; drainTimeout?: string } = {}): string {
  return routesYaml(`drainTimeout: ${options.drainTimeout ?? '10s'}
services:
  chat: { url: ${chat.url} }
  other: { url: ${other.url} }
routes:
  - { name: chat, match: { path: /chat }, to: ${options.chatTo ?? 'chat'} }
${options.extra ?? ''}  - { name: rest, match: { path: / }, to: other }
`);
}

async function reload(proxy: TestProxy, yaml: string): Promise<void> {
  await proxy.write(yaml);
  const res = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
  expect(await res.body.json()).toMatchObject({ result: 'success' });
}

async function tunnels(app: RunningApp): Promise<number> {
  const text = await (await request(`${app.adminUrl}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith('ficus_websocket_tunnels{route="chat",service="chat"} '));
  return Number(line?.split(' ')[1] ?? 0);
}

async function echoes(client: WsClient, text: string): Promise<void> {
  client.send(text);
  expect((await client.next()).payload.toString()).toBe(text);
}

function isGoingAway(frame: Frame | undefined): boolean {
  return frame?.opcode === OP.close && frame.payload.readUInt16BE(0) === 1001 && frame.payload.subarray(2).toString() === 'going away';
}

async function setup(options: Parameters<typeof config>[2] = {}) {
  const chat = await startWsUpstream('chat');
  const other = await startWsUpstream('other');
  const proxy = await startProxy(config(chat, other, options));
  const arrived = chat.nextConnection();
  const client = await wsConnect(portOf(proxy.app.proxyUrl), '/chat');
  expect(client.status).toBe(101);
  const upstream = await arrived;
  return { chat, other, proxy, client, upstream };
}

const NEWS = '  - { name: news, match: { path: /news }, to: other }\n';

test.each([
  { case: 'another route is added', from: {}, change: { extra: NEWS } },
  { case: 'another route changes its target', from: { extra: NEWS }, change: { extra: NEWS.replace('to: other', 'to: chat') } },
  { case: 'nothing about the tunnel changes (drainTimeout)', from: {}, change: { drainTimeout: '7s' } },
])('an open tunnel survives a reload where $case', async ({ from, change }) => {
  const { chat, other, proxy, client, upstream } = await setup(from);
  await echoes(client, 'before');
  await reload(proxy, config(chat, other, change));
  await echoes(client, 'after');
  upstream.send('pushed after the reload');
  expect((await client.next()).payload.toString()).toBe('pushed after the reload');
  expect(chat.connections).toHaveLength(1);
  expect(await tunnels(proxy.app)).toBe(1);
});

test.each([
  { case: 'the route moves to another service', change: { chatTo: 'other' }, url: undefined },
  { case: 'the route changes its match', change: { chatTo: 'chat', extra: '' }, url: '/chat-v2' },
  { case: "the service's endpoint changes", change: {}, url: 'new-endpoint' },
])('a reload where $case closes the tunnel with 1001 both ways', async ({ change, url }) => {
  const { chat, other, proxy, client, upstream } = await setup();
  await echoes(client, 'before');
  let yaml = config(chat, other, change);
  if (url === '/chat-v2') yaml = yaml.replace('path: /chat }', 'path: /chat-v2 }');
  if (url === 'new-endpoint') {
    const moved = await startWsUpstream('chat-moved');
    yaml = yaml.replace(`chat: { url: ${chat.url} }`, `chat: { url: ${moved.url} }`);
  }
  await reload(proxy, yaml);
  expect(isGoingAway(await client.next())).toBe(true);
  // The upstream got a (masked) Close 1001 too, and answered it.
  await upstream.closed;
  expect(isGoingAway(upstream.frames.at(-1))).toBe(true);
  client.send(closePayload(1001), OP.close);
  await client.closed;
  await vi.waitFor(async () => expect(await tunnels(proxy.app)).toBe(0), { timeout: 2_000, interval: 10 });
});

test('a Close sent while a frame is half way through waits for its end, and nothing follows it', async () => {
  const { chat, other, proxy, client, upstream } = await setup();
  const frame = encodeFrame(OP.binary, Buffer.alloc(10_000, 7), false);
  upstream.socket.write(frame.subarray(0, 3_000));
  // The first bytes have reached the client before the reload: the frame is in flight.
  await vi.waitFor(() => expect(client.socket.bytesRead).toBeGreaterThan(3_000), { timeout: 2_000, interval: 2 });
  // Keep the upstream from answering our Close until the frame is done.
  upstream.socket.removeAllListeners('data');
  await reload(proxy, config(chat, other, { chatTo: 'other' }));
  upstream.socket.write(frame.subarray(3_000));
  upstream.send('after the close: never relayed');
  const whole = await client.next();
  expect(whole.opcode).toBe(OP.binary);
  expect(whole.payload.equals(Buffer.alloc(10_000, 7))).toBe(true);
  expect(isGoingAway(await client.next())).toBe(true);
  client.send(closePayload(1001), OP.close);
  await client.closed;
  await expect(client.next(200)).rejects.toThrow();
});

test('a large frame to a slow reader is finished before the Close: the grace starts once our Close is out', async () => {
  const { chat, other, proxy, client, upstream } = await setup();
  // More than the socket buffers on the way hold, so ficus is still relaying when the grace is up.
  const payload = Buffer.alloc(16 * 1024 * 1024, 5);
  client.socket.pause();
  upstream.socket.write(encodeFrame(OP.binary, payload, false));
  await reload(proxy, config(chat, other, { chatTo: 'other' }));
  // The reader takes longer than the grace a tunnel is given to close: the time is the test.
  await new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS + 300));
  client.socket.resume();
  const whole = await client.next(10_000);
  expect(whole.opcode).toBe(OP.binary);
  expect(whole.payload.equals(payload)).toBe(true);
  expect(isGoingAway(await client.next())).toBe(true);
});

test('the upstream\'s Close also waits for the end of a frame the client is half way through', async () => {
  const { chat, other, proxy, client, upstream } = await setup();
  const frame = encodeFrame(OP.binary, Buffer.alloc(10_000, 9), true);
  client.socket.write(frame.subarray(0, 5_000));
  await vi.waitFor(() => expect(upstream.socket.bytesRead).toBeGreaterThan(5_000), { timeout: 2_000, interval: 2 });
  await reload(proxy, config(chat, other, { chatTo: 'other' }));
  expect(isGoingAway(await client.next())).toBe(true);
  client.socket.write(frame.subarray(5_000));
  client.send('after the close: never relayed');
  await upstream.closed;
  expect(upstream.frames.map((f) => [f.opcode, f.payload.length])).toEqual([
    [OP.binary, 10_000],
    [OP.close, 12],
  ]);
  expect(isGoingAway(upstream.frames[1])).toBe(true);
});

test.each([
  { case: 'answers the Close', answers: true },
  { case: 'never answers', answers: false },
])('drain: a client that $case gets Close 1001 and the drain ends long before drainTimeout', async ({ answers }) => {
  const { proxy, client, upstream } = await setup({ drainTimeout: '20s' });
  await echoes(client, 'before');
  const started = performance.now();
  const drained = proxy.app.drain();
  expect(isGoingAway(await client.next())).toBe(true);
  if (answers) client.send(closePayload(1001), OP.close);
  await drained;
  await client.closed;
  await upstream.closed;
  expect(isGoingAway(upstream.frames.at(-1))).toBe(true);
  // drainTimeout is 20 s: a drain that waited for it would take four times this.
  expect(performance.now() - started).toBeLessThan(5_000);
});

function killSwitched(chat: WsUpstream, other: WsUpstream, invoices: boolean, extraService = ''): string {
  return routesYaml(`services:
  chat: { url: ${chat.url} }
  other: { url: ${other.url} }
${extraService}cohorts:
  half: { percent: 50 }
toggles:
  chat-on: { enabled: ${invoices} }
routes:
  - { name: chat-off, match: { path: /chat, toggle: "!chat-on" }, respond: { status: 503, body: "chat is paused" } }
  - { name: chat-half, match: { path: /chat, cohort: half }, to: other }
  - { name: chat, match: { path: /chat }, to: chat }
`);
}

test('a reload that throws a kill switch closes the tunnels it now refuses; one that changes nothing for them keeps every one, anonymous draws included', async () => {
  const chat = await startWsUpstream('chat');
  const other = await startWsUpstream('other');
  const proxy = await startProxy(killSwitched(chat, other, true));
  // Anonymous callers: each handshake drew its own bucket, about half of them into `half`.
  const clients = await Promise.all(Array.from({ length: 8 }, () => wsConnect(portOf(proxy.app.proxyUrl), '/chat')));
  expect(clients.map((c) => c.status)).toEqual(Array(8).fill(101));

  await reload(proxy, killSwitched(chat, other, true, '  spare: { url: http://127.0.0.1:1 }\n'));
  // Decided again with the bucket each drew, every tunnel is where it was: none is closed.
  for (const [i, client] of clients.entries()) await echoes(client, `still here ${i}`);

  await reload(proxy, killSwitched(chat, other, false));
  for (const client of clients) expect((await client.next()).opcode).toBe(OP.close);
});
