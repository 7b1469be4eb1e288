import { request } from 'undici';
import { expect, test } from 'vitest';
import { EVENT } from '../../src/observe/log.js';
import { bucketOf } from '../../src/routing/bucket.js';
import { canaryYaml } from '../helpers/canary.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/*
 * SPEC §1.4: a canary that answers, but slowly, is ejected on its p99 (maxP99), or on its p99
 * against the stable side's (maxP99VsStable); a slow stable side alone ejects nothing.
 */

const USERS = Array.from({ length: 80 }, (_, i) => `user-${i}`);
const onCanary = USERS.filter((id) => bucketOf('search', id) < 5_000);
const onStable = USERS.filter((id) => bucketOf('search', id) >= 5_000);

async function get(proxy: TestProxy, user: string) {
  const res = await request(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': user } });
  await res.body.dump();
  return res.statusCode;
}

async function setup(canaryDelayMs: number, stableDelayMs: number, thresholds: string) {
  const delayed = (name: string, ms: number) =>
    startUpstream(name, (req, res) => {
      req.resume();
      setTimeout(() => res.end(name), ms);
    });
  const legacy = await delayed('legacy', stableDelayMs);
  const v2 = await delayed('search-v2', canaryDelayMs);
  const proxy = await startProxy(
    canaryYaml(legacy.url, v2.url, `{ to: search-v2, weight: 50, analysis: { interval: 200ms, window: 5s, minRequests: 10, ${thresholds} } }`, { rest: false }),
  );
  return { proxy, v2 };
}

/** Every user at once, in rounds, until the canary's state is `until` or the deadline passes. */
async function trafficUntil(proxy: TestProxy, until: (state: string | undefined) => boolean, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  const state = () => proxy.app.store.current.canaries[0]?.state;
  while (!until(state())) {
    if (Date.now() > deadline) throw new Error(`canary still ${state()} after ${deadlineMs} ms`);
    const statuses = await Promise.all(USERS.map((id) => get(proxy, id)));
    expect(statuses.every((s) => s === 200)).toBe(true);
  }
}

test.each([
  { name: 'maxP99', canaryMs: 120, stableMs: 0, thresholds: 'maxP99: 50ms', reason: 'p99', message: /^p99 [\d.]+ms > 50ms over \d+ requests$/ },
  { name: 'maxP99VsStable', canaryMs: 250, stableMs: 10, thresholds: 'maxP99VsStable: 3', reason: 'vs_stable', message: /^p99 [\d.]+ms is [\d.]+× stable's [\d.]+ms > 3× over \d+ requests$/ },
])('a slow canary is ejected on $name, and its users then get the stable side', async ({ canaryMs, stableMs, thresholds, reason, message }) => {
  const { proxy, v2 } = await setup(canaryMs, stableMs, thresholds);
  await trafficUntil(proxy, (state) => state === 'ejected', 5_000);
  const line = proxy.logs.find((l) => l.event === EVENT.canaryEjected);
  expect(line).toMatchObject({ reason, trigger: 'analysis', message: expect.stringMatching(message) });
  // Counted once, under the reason it was ejected for and no other.
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics.split('\n').filter((l) => l.startsWith('ficus_ejections_total{'))).toEqual([`ficus_ejections_total{route="search",reason="${reason}"} 1`]);
  // Back on the stable side: the slow canary sees none of its users any more.
  const before = v2.seen.length;
  expect(await Promise.all(onCanary.map((id) => get(proxy, id)))).toEqual(onCanary.map(() => 200));
  expect(v2.seen.length).toBe(before);
});

test('a canary as fast as the slow stable side is not ejected on p99 against it', async () => {
  const { proxy } = await setup(60, 60, 'maxP99VsStable: 2');
  // Verdicts come and stay healthy over several intervals.
  const deadline = Date.now() + 5_000;
  let healthy = 0;
  let lastAt = 0;
  while (healthy < 3) {
    if (Date.now() > deadline) throw new Error('no three healthy verdicts in 5 s');
    await Promise.all([...onStable, ...onCanary].map((id) => get(proxy, id)));
    const verdict = proxy.app.store.current.canaries[0]?.lastVerdict;
    if (verdict && verdict.at !== lastAt) {
      lastAt = verdict.at;
      if (verdict.outcome === 'healthy') healthy++;
    }
    expect(proxy.app.store.current.canaries[0]?.state).toBe('running');
  }
});
