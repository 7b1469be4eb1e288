import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { portOf, startWsUpstream, wsConnect, type WsUpstream } from '../helpers/websocket.js';

const RELOADS = 40;
const TUNNELS = 6;

/** Generation `n`: the `/other` route flips between the two services; the `/chat` route never changes. */
function generation(chat: WsUpstream, other: WsUpstream, n: number): string {
  return routesYaml(`# generation ${n}
services:
  chat: { url: ${chat.url} }
  other: { url: ${other.url} }
routes:
  - { name: chat, match: { path: /chat }, to: chat }
  - { name: other, match: { path: /other }, to: ${n % 2 === 0 ? 'other' : 'chat'} }
`);
}

test(`open tunnels keep every message through ${RELOADS} reloads that leave their route alone`, { timeout: 30_000 }, async () => {
  const chat = await startWsUpstream('chat');
  const other = await startWsUpstream('other');
  const proxy = await startProxy(generation(chat, other, 0));
  const port = portOf(proxy.app.proxyUrl);
  const clients = await Promise.all(Array.from({ length: TUNNELS }, () => wsConnect(port, '/chat')));
  expect(clients.map((c) => c.status)).toEqual(Array(TUNNELS).fill(101));

  let running = true;
  let echoed = 0;
  // Each tunnel echoes numbered messages for as long as the reloads go on; one lost, reordered
  // or cut message fails the test.
  const talk = async (client: (typeof clients)[number], t: number): Promise<void> => {
    for (let i = 0; running; i++) {
      const text = `tunnel ${t} message ${i}`;
      client.send(text);
      expect((await client.next(2_000)).payload.toString()).toBe(text);
      echoed++;
    }
  };
  const talking = Promise.all(clients.map(talk));
  for (let n = 1; n <= RELOADS; n++) {
    await proxy.write(generation(chat, other, n));
    const res = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
    expect(await res.body.json()).toMatchObject({ result: 'success' });
  }
  running = false;
  await talking;
  expect(echoed).toBeGreaterThan(RELOADS);
  expect(chat.connections).toHaveLength(TUNNELS);
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain(`ficus_websocket_tunnels{route="chat",service="chat"} ${TUNNELS}`);
});
