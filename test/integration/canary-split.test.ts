import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { bucketOf } from '../../src/routing/bucket.js';
import { canaryYaml } from '../helpers/canary.js';
import { startProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * SPEC §1.4 first bullet through the real proxy: `canary: { to, weight }` sends weight % of users
 * (bucket seeded by the route name, or canary.seed) to the canary, sticky per user; raising the
 * weight by reload keeps everyone who was on it; the two sides are counted apart in metrics.
 */

function config(legacy: Upstream, v2: Upstream, canary: string): string {
  return canaryYaml(legacy.url, v2.url, canary);
}

const USERS = Array.from({ length: 120 }, (_, i) => `user-${i}`);

async function sideOf(app: RunningApp, id: string, path = '/search'): Promise<string> {
  const res = await request(`${app.proxyUrl}${path}?q=x`, { headers: { 'x-user-id': id } });
  await res.body.dump();
  expect(res.statusCode).toBe(200);
  return res.headers['x-upstream'] === 'search-v2' ? 'canary' : 'stable';
}

/** Each user's side, asked twice: an answer that changes is a stickiness failure. */
async function sides(app: RunningApp, users = USERS): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let round = 0; round < 2; round++) {
    // Ten users at a time: as a real crowd would arrive, and a few times faster than one by one.
    for (let from = 0; from < users.length; from += 10) {
      const batch = users.slice(from, from + 10);
      const answers = await Promise.all(batch.map((id) => sideOf(app, id)));
      batch.forEach((id, i) => {
        if (round === 0) out.set(id, answers[i] as string);
        else expect(answers[i], `${id} moved on request ${round + 1}`).toBe(out.get(id));
      });
    }
  }
  return out;
}

const predicted = (seed: string, weight: number) => new Map(USERS.map((id) => [id, bucketOf(seed, id) < weight * 100 ? 'canary' : 'stable']));
const onCanary = (split: Map<string, string>) => [...split].filter(([, side]) => side === 'canary').map(([id]) => id);

async function setup(canary: string) {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const proxy = await startProxy(config(legacy, v2, canary));
  return { proxy, legacy, v2 };
}

test.each([
  { name: 'seeded by the route name', canary: '{ to: search-v2, weight: 20 }', seed: 'search', weight: 20 },
  { name: 'seeded by canary.seed', canary: '{ to: search-v2, weight: 20, seed: release-7 }', seed: 'release-7', weight: 20 },
  { name: 'with a decimal weight', canary: '{ to: search-v2, weight: 12.5 }', seed: 'search', weight: 12.5 },
])('weight % of users go to the canary, sticky per user, $name', async ({ canary, seed, weight }) => {
  const { proxy, legacy, v2 } = await setup(canary);
  const split = await sides(proxy.app);
  expect(split).toEqual(predicted(seed, weight));
  const share = onCanary(split).length / USERS.length;
  expect(share).toBeGreaterThan(0);
  expect(Math.abs(share * 100 - weight)).toBeLessThan(10);
  // The canary is reached with the request as the stable side would have had it.
  expect(v2.seen[0]?.url).toBe('/search?q=x');
  expect(legacy.seen.every((r) => r.url === '/search?q=x')).toBe(true);
});

test('only the route with the canary is split', async () => {
  const { proxy, v2 } = await setup('{ to: search-v2, weight: 100 }');
  expect(await sideOf(proxy.app, 'user-1', '/other')).toBe('stable');
  expect(await sideOf(proxy.app, 'user-1', '/search')).toBe('canary');
  expect(v2.seen).toHaveLength(1);
});

test('raising the weight by reload keeps every user who was on the canary, and lowering it to 0 sends all back', async () => {
  const { proxy, legacy, v2 } = await setup('{ to: search-v2, weight: 10 }');
  const reloadTo = async (canary: string) => {
    await proxy.write(config(legacy, v2, canary));
    const report = await proxy.app.reload('admin');
    expect(report.result).toBe('success');
  };

  const at10 = await sides(proxy.app);
  await reloadTo('{ to: search-v2, weight: 35 }');
  const at35 = await sides(proxy.app);
  await reloadTo('{ to: search-v2, weight: 80 }');
  const at80 = await sides(proxy.app);

  for (const id of onCanary(at10)) expect(at35.get(id), id).toBe('canary');
  for (const id of onCanary(at35)) expect(at80.get(id), id).toBe('canary');
  expect(onCanary(at10).length).toBeLessThan(onCanary(at35).length);
  expect(onCanary(at35).length).toBeLessThan(onCanary(at80).length);
  expect(at80).toEqual(predicted('search', 80));

  await reloadTo('{ to: search-v2, weight: 0 }');
  expect(onCanary(await sides(proxy.app, USERS.slice(0, 50)))).toEqual([]);
});

test('ficus_requests_total counts the canary and the stable side apart', async () => {
  const { proxy } = await setup('{ to: search-v2, weight: 30 }');
  const split = await sides(proxy.app, USERS.slice(0, 100));
  const canary = onCanary(split).length * 2;
  const stable = 200 - canary;
  expect(canary).toBeGreaterThan(0);
  expect(stable).toBeGreaterThan(0);
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain(`ficus_requests_total{route="search",service="search-v2",color="",side="canary",code="200"} ${canary}`);
  expect(metrics).toContain(`ficus_requests_total{route="search",service="legacy",color="",side="stable",code="200"} ${stable}`);
  // The access line names the side too, so a log search can split the two as the metrics do.
  await vi.waitFor(() => expect(proxy.logs.filter((l) => l.event === 'access')).toHaveLength(200));
  const sidesLogged = proxy.logs.filter((l) => l.event === 'access').map((l) => `${String(l.service)} ${String(l.side)}`);
  expect(sidesLogged.filter((s) => s === 'search-v2 canary')).toHaveLength(canary);
  expect(sidesLogged.filter((s) => s === 'legacy stable')).toHaveLength(stable);
});

test('two replicas of the proxy put every user on the same side', async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const yaml = config(legacy, v2, '{ to: search-v2, weight: 40 }');
  const [one, two] = [await startProxy(yaml), await startProxy(yaml)];
  const users = USERS.slice(0, 60);
  expect(await sides(two.app, users)).toEqual(await sides(one.app, users));
});
