import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { refusedPort } from '../helpers/upstream.js';
import { inPercent } from '../../src/routing/bucket.js';
import { answer101, heldWsUpstream, OP, portOf, startWsUpstream, wsConnect, type Frame, type WsClient } from '../helpers/websocket.js';

/**
 * A tunnel lives for hours, so the runtime decisions that move users must move its users too:
 * a canary ejection closes (1001) the tunnels on the canary side, a guard's rollback those on
 * the colour it rolled back from; every other tunnel keeps running.
 */

function isGoingAway(frame: Frame): boolean {
  return frame.opcode === OP.close && frame.payload.readUInt16BE(0) === 1001;
}

async function echoes(client: WsClient, text: string): Promise<void> {
  client.send(text);
  expect((await client.next()).payload.toString()).toBe(text);
}

async function logged(proxy: TestProxy, event: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!proxy.logs.some((l) => l.event === event)) {
    if (Date.now() > deadline) throw new Error(`no ${event} line`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Blue/green `orders` whose green has a dead second endpoint: POSTs there fail, and the guard rolls back. */
async function guardedOrders(blue: string, green: string): Promise<(active: string) => string> {
  const dead = `http://127.0.0.1:${await refusedPort()}`;
  return (active) =>
    routesYaml(`services:
  orders:
    blue: { url: ${blue} }
    green: { urls: [${green}, ${dead}] }
    active: ${active}
    guard: { interval: 50ms, window: 1m, minRequests: 3, maxErrorRate: 0.3 }
routes:
  - { name: orders, match: { path: / }, to: orders }
`);
}

test('a canary ejection closes the canary side’s tunnels, and only those', async () => {
  const stable = await startWsUpstream('stable');
  const canary = await startWsUpstream('canary');
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services:
  stable: { url: ${stable.url} }
  canary: { url: ${canary.url} }
routes:
  - { name: chat, match: { path: /chat }, to: stable, canary: { to: canary, weight: 50 } }
`),
  );
  const port = portOf(proxy.app.proxyUrl);
  const bySide = new Map<string, WsClient>();
  for (let i = 0; bySide.size < 2 && i < 32; i++) {
    const client = await wsConnect(port, '/chat', { 'x-user-id': `user-${i}` });
    expect(client.status).toBe(101);
    const side = client.header('x-upstream') as string;
    if (!bySide.has(side)) bySide.set(side, client);
  }
  const onCanary = bySide.get('canary') as WsClient;
  const onStable = bySide.get('stable') as WsClient;
  await echoes(onCanary, 'hello canary');

  const res = await request(`${proxy.app.adminUrl}/routes/chat/eject`, { method: 'POST' });
  expect(res.statusCode).toBe(200);
  await res.body.dump();

  expect(isGoingAway(await onCanary.next())).toBe(true);
  await echoes(onStable, 'still here');
});

test('a guard rollback closes the tunnels on the colour it rolled back from, and only those', async () => {
  const blue = await startWsUpstream('blue');
  const green = await startWsUpstream('green');
  const config = await guardedOrders(blue.url, green.url);
  const proxy = await startProxy(config('blue'));
  const port = portOf(proxy.app.proxyUrl);
  const onBlue = await wsConnect(port, '/ws');
  expect(onBlue.header('x-upstream')).toBe('blue');

  await proxy.write(config('green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  const onGreen = await wsConnect(port, '/ws');
  expect(onGreen.header('x-upstream')).toBe('green');
  // POSTs are never retried: round-robin sends every other one to the dead endpoint.
  for (let i = 0; i < 3; i++) await (await request(`${proxy.app.proxyUrl}/orders`, { method: 'POST', body: 'x' })).body.dump();

  await logged(proxy, 'service.rolled_back');
  expect(isGoingAway(await onGreen.next())).toBe(true);
  await echoes(onBlue, 'blue keeps going');
});

test('a tunnel the canary opens just after its ejection (the upgrade was in flight) is closed too', async () => {
  const stable = await startWsUpstream('stable');
  const { upstream: canary, next } = await heldWsUpstream('canary');
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services:
  stable: { url: ${stable.url} }
  canary: { url: ${canary.url} }
routes:
  - { name: chat, match: { path: /chat }, to: stable, canary: { to: canary, weight: 50 } }
`),
  );
  let user = 'user-0';
  for (let i = 1; !inPercent('chat', user, 50); i++) user = `user-${i}`;
  const arrived = next();
  const pending = wsConnect(portOf(proxy.app.proxyUrl), '/chat', { 'x-user-id': user });
  const held = await arrived;

  const res = await request(`${proxy.app.adminUrl}/routes/chat/eject`, { method: 'POST' });
  expect(res.statusCode).toBe(200);
  await res.body.dump();
  answer101(held, 'canary');

  const client = await pending;
  expect(client.header('x-upstream')).toBe('canary');
  expect(isGoingAway(await client.next())).toBe(true);
});

test('a tunnel the rolled-back colour opens just after the rollback (the upgrade was in flight) is closed too', async () => {
  const blue = await startWsUpstream('blue');
  const { upstream: green, next } = await heldWsUpstream('green');
  const config = await guardedOrders(blue.url, green.url);
  const proxy = await startProxy(config('blue'));
  const port = portOf(proxy.app.proxyUrl);
  await proxy.write(config('green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  const arrived = next();
  const pending = wsConnect(port, '/ws');
  const held = await arrived;

  // POSTs are never retried: round-robin sends every other one to the dead endpoint.
  for (let i = 0; i < 3; i++) await (await request(`${proxy.app.proxyUrl}/orders`, { method: 'POST', body: 'x' })).body.dump();
  await logged(proxy, 'service.rolled_back');
  answer101(held, 'green');

  const client = await pending;
  expect(client.header('x-upstream')).toBe('green');
  expect(isGoingAway(await client.next())).toBe(true);
});

test('a reload that turns preview off or changes its token closes the tunnels a token opened on the colour nobody else gets, and only those', async () => {
  const blue = await startWsUpstream('blue');
  const green = await startWsUpstream('green');
  const config = (token: string, active = 'blue') =>
    routesYaml(`services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: ${active}
    preview: { header: x-preview, token: "${token}" }
routes:
  - { name: orders, match: { path: / }, to: orders }
`);
  const proxy = await startProxy(config('t0k3n'));
  const port = portOf(proxy.app.proxyUrl);
  const live = await wsConnect(port, '/ws');
  const previewing = await wsConnect(port, '/ws', { 'x-preview': 't0k3n' });
  expect([live.header('x-upstream'), previewing.header('x-upstream')]).toEqual(['blue', 'green']);

  // A cutover to the previewed colour leaves every tunnel where it is.
  await proxy.write(config('t0k3n', 'green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  await echoes(previewing, 'green is live now');
  await echoes(live, 'blue still');

  // Back, then the token changes: the preview tunnel on the colour that serves nobody goes.
  await proxy.write(config('t0k3n'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  await echoes(previewing, 'preview again');
  await proxy.write(config('n3w-t0k3n'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(isGoingAway(await previewing.next())).toBe(true);
  await echoes(live, 'blue keeps going');
});
