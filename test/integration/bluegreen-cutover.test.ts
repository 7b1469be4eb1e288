import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Pool, request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Cutover by editing `active` while traffic flows (SPEC §1.6): new requests go to the new colour
 * at once, requests in flight on the old colour finish, none fails, and the old colour's pooled
 * connections close once its last request is done.
 */
const CLIENTS = 8;
const SLOW_MS = 40;
const MIN_RATE = 200;

type Name = 'blue' | 'green';

interface Colour {
  name: Name;
  upstream: Upstream;
  /** Connections from the proxy that are open right now. */
  open: () => number;
  /** Requests on /hold waiting for `release()`: in flight, mid-body, across the cutover. */
  held: () => number;
  release: () => void;
}

async function colour(name: Name): Promise<Colour> {
  let waiting: (() => void)[] = [];
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url?.includes('/hold')) {
        res.write('{"name":');
        waiting.push(() => res.end(`"${name}"}`));
      } else if (req.url?.includes('/slow')) {
        setTimeout(() => res.end(JSON.stringify({ name })), SLOW_MS);
      } else {
        res.end(JSON.stringify({ name }));
      }
    });
  };
  const upstream = await startUpstream(name, answer);
  // A long keep-alive hint: the proxy would keep idle connections for half a minute on its own.
  upstream.server.keepAliveTimeout = 30_000;
  const sockets = new Set<Socket>();
  upstream.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return {
    name,
    upstream,
    open: () => sockets.size,
    held: () => waiting.length,
    release: () => {
      for (const finish of waiting) finish();
      waiting = [];
    },
  };
}

function config(blue: Upstream, green: Upstream, active: Name): string {
  return routesYaml(`# active: ${active}
services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: ${active}
routes:
  - { name: orders, match: { path: / }, to: orders }
`);
}

interface Outcome {
  sentAt: number;
  name: string;
}

/** Edits the file and reloads; `begun` and `done` bracket the moment the new generation took over. */
async function cutover(proxy: TestProxy, text: string): Promise<{ begun: number; done: number }> {
  const begun = performance.now();
  await proxy.write(text);
  expect((await proxy.app.reload('signal')).result).toBe('success');
  return { begun, done: performance.now() };
}

test('a cutover and a cut-back under a steady stream of requests fail none, and each sends new requests to the new colour at once', { timeout: 30_000 }, async () => {
  const blue = await colour('blue');
  const green = await colour('green');
  const colours = { blue, green };
  const proxy = await startProxy(config(blue.upstream, green.upstream, 'blue'));

  const outcomes: Outcome[] = [];
  const failures: string[] = [];
  let running = true;
  // A failed assertion must not leave the clients running: stop them and free held requests.
  onTestFinished(() => {
    running = false;
    blue.release();
    green.release();
  });
  const client = async (c: number) => {
    // Each client is one keep-alive connection to the proxy.
    const pool = new Pool(proxy.app.proxyUrl, { connections: 1 });
    onTestFinished(() => pool.close());
    for (let i = 0; running; i++) {
      const path = `/orders/${c}/${i}${c % 4 === 0 ? '/slow' : ''}`;
      const sentAt = performance.now();
      try {
        const res = await pool.request({ path, method: c % 3 === 1 ? 'POST' : 'GET', body: c % 3 === 1 ? 'x'.repeat(512) : undefined });
        const text = await res.body.text();
        const name = res.statusCode === 200 ? (JSON.parse(text) as { name: string }).name : `${res.statusCode} ${text}`;
        outcomes.push({ sentAt, name });
      } catch (error) {
        failures.push(`${path}: ${String(error)}`);
        // One failure fails the test; a client retrying at once could spin without yielding.
        return;
      }
    }
  };
  const started = performance.now();
  const clients = Array.from({ length: CLIENTS }, (_, c) => client(c));
  const servedSince = (at: number) => outcomes.filter((o) => o.sentAt > at).length;

  // Two requests held mid-response on the active colour: they must finish there, not fail.
  const hold = async (to: Colour) => {
    const held = [0, 1].map(() =>
      request(`${proxy.app.proxyUrl}/orders/hold`)
        .then(async (res) => ({ status: res.statusCode, body: await res.body.text() }))
        .catch((error: unknown) => ({ status: 0, body: String(error) })),
    );
    await vi.waitFor(() => expect(to.held()).toBe(2), { timeout: 5_000, interval: 2 });
    return held;
  };

  const cuts: { begun: number; done: number; to: Name }[] = [];
  for (const [from, to] of [['blue', 'green'], ['green', 'blue']] as const) {
    const old = colours[from];
    await vi.waitFor(() => expect(servedSince(cuts.at(-1)?.done ?? 0)).toBeGreaterThan(150), { timeout: 10_000, interval: 5 });
    const held = await hold(old);

    cuts.push({ ...(await cutover(proxy, config(blue.upstream, green.upstream, to))), to });
    // New traffic flows to the new colour while the held requests are still in flight on the old one.
    await vi.waitFor(() => expect(servedSince(cuts.at(-1)?.done ?? 0)).toBeGreaterThan(150), { timeout: 10_000, interval: 5 });
    expect(old.held()).toBe(2);
    expect(old.open()).toBeGreaterThanOrEqual(2);

    old.release();
    for (const response of await Promise.all(held)) expect(response).toEqual({ status: 200, body: `{"name":"${from}"}` });
    // Drained: the old colour's connections, idle or just finished, are closed by the proxy,
    // long before the upstream's own 30 s keep-alive would.
    await vi.waitFor(() => expect(old.open()).toBe(0), { timeout: 2_000, interval: 5 });
  }
  await vi.waitFor(() => expect(servedSince(cuts.at(-1)?.done ?? 0)).toBeGreaterThan(150), { timeout: 10_000, interval: 5 });
  running = false;
  await Promise.all(clients);
  const seconds = (performance.now() - started) / 1000;

  expect(failures).toEqual([]);
  expect(outcomes.filter((o) => o.name !== 'blue' && o.name !== 'green')).toEqual([]);
  expect(outcomes.length / seconds).toBeGreaterThanOrEqual(MIN_RATE);
  // Before the first cutover blue alone served; after each, every request sent reached the new
  // colour, until the next cutover began.
  const windows = [{ from: 0, until: cuts[0]?.begun ?? 0, to: 'blue' }, ...cuts.map((cut, i) => ({ from: cut.done, until: cuts[i + 1]?.begun ?? Infinity, to: cut.to }))];
  for (const { from, until, to } of windows) {
    const sent = outcomes.filter((o) => o.sentAt > from && o.sentAt < until);
    expect(sent.length).toBeGreaterThan(150);
    expect(sent.filter((o) => o.name !== to)).toEqual([]);
  }
  expect(proxy.logs.filter((line) => line.event === 'access' && line.status !== 200)).toEqual([]);
  // The colour taken back into service opened fresh connections, and serves on them.
  expect(blue.open()).toBeGreaterThan(0);
});
