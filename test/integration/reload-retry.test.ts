import type { IncomingMessage } from 'node:http';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/*
 * A bodyless GET whose connection is reset before any answer is retried once (SPEC §1.7). When
 * a reload lands between the first try and the reset, the pool of the first try may be retired
 * already: the retry must go to the service as it runs now, or "no request fails because of a
 * reload" (§1.6) does not hold.
 */

const config = (url: string, extra = '') => routesYaml(`services:\n  api: { url: ${url}${extra} }\nroutes:\n  - { name: rest, match: { path: / }, to: api }\n`);

/** An upstream that holds its first request until the test resets its connection, and answers every later one. */
async function resetsFirstWhenTold(name: string) {
  let first: ((req: IncomingMessage) => void) | undefined;
  const arrived = new Promise<IncomingMessage>((resolve) => (first = resolve));
  const upstream = await startUpstream(name, (req, res) => {
    if (first) {
      first(req);
      first = undefined;
      return;
    }
    res.writeHead(200, { 'x-upstream': name });
    res.end(name);
  });
  return { upstream, arrived };
}

interface After {
  url: string;
  extra: string;
  answers: string;
}

test.each<{ change: string; next: (url: string) => Promise<After> }>([
  { change: 'the service moves to another URL', next: async () => ({ url: (await startUpstream('b', (_req, res) => res.writeHead(200, { 'x-upstream': 'b' }).end('b'))).url, extra: '', answers: 'b' }) },
  { change: "the service's connect timeout changes (same URL, a new pool)", next: (url) => Promise.resolve({ url, extra: ', timeouts: { connect: 2s }', answers: 'a' }) },
])('a GET reset after a reload retired its pool is retried on the service as it runs now: $change', async ({ next }) => {
  const { upstream: a, arrived } = await resetsFirstWhenTold('a');
  const proxy = await startProxy(config(a.url));
  const pending = request(`${proxy.app.proxyUrl}/x`);
  const held = await arrived;

  const after = await next(a.url);
  await proxy.write(config(after.url, after.extra));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  held.socket.destroy();

  const res = await pending;
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe(after.answers);
  const access = proxy.logs.filter((l) => l.event === 'access');
  expect(access).toEqual([expect.objectContaining({ status: 200 })]);
  expect(access[0]).not.toHaveProperty('fault');
});
