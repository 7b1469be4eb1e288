import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { EVENT } from '../../src/observe/log.js';
import { bucketOf } from '../../src/routing/bucket.js';
import { canaryYaml } from '../helpers/canary.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/*
 * SPEC §1.4 `steps`: a healthy canary walks its steps, one per stepInterval, on live traffic;
 * without traffic it holds (no promotion without evidence); at 100 it is promoted, and /status
 * and the log tell the operator to make it the route's `to`.
 */

const USERS = Array.from({ length: 100 }, (_, i) => `user-${i}`);
const STEP_MS = 300;

async function setup() {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const proxy = await startProxy(
    canaryYaml(
      legacy.url,
      v2.url,
      `{ to: search-v2, weight: 10, steps: [10, 40, 100], stepInterval: ${STEP_MS}ms, analysis: { interval: 100ms, window: 2s, minRequests: 5, maxErrorRate: 0.01 } }`,
      { head: 'auditLog: audit.jsonl\n', rest: false },
    ),
  );
  return { proxy, v2 };
}

async function status(proxy: TestProxy) {
  const doc = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { routes: Record<string, unknown>[] };
  return doc.routes.find((r) => r.name === 'search') as Record<string, unknown> & { weight: number; state: string };
}

/** Who is on the canary right now: each user asks once. */
async function canaryUsers(proxy: TestProxy): Promise<Set<string>> {
  const on = new Set<string>();
  await Promise.all(
    USERS.map(async (id) => {
      const res = await request(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': id } });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      if (res.headers['x-upstream'] === 'search-v2') on.add(id);
    }),
  );
  return on;
}

test('a healthy canary walks every step, one per stepInterval, keeps its users at each, and is promoted at 100', async () => {
  const { proxy } = await setup();
  const deadline = Date.now() + 5_000;
  const live = () => proxy.app.store.current.canaries[0];
  const observed = new Set<number>();
  for (;;) {
    const weight = live()?.weight ?? -1;
    const users = await canaryUsers(proxy);
    // At whatever step it stands, the canary has exactly the users whose bucket is inside it:
    // each step only adds users. A round that straddled a step says nothing of either.
    if (live()?.weight === weight) {
      expect(users).toEqual(new Set(USERS.filter((id) => bucketOf('search', id) < weight * 100)));
      observed.add(weight);
    }
    if (live()?.state === 'promoted' && observed.has(100)) break;
    if (Date.now() > deadline) throw new Error(`not promoted in 5 s: ${live()?.weight}`);
  }
  // The walk, as the proxy logged it: each step in turn, one stepInterval apart, not faster.
  const moves = proxy.logs.filter((l) => l.event === EVENT.canaryStep || l.event === EVENT.canaryPromoted);
  expect(moves.map((l) => [l.event, l.fromWeight, l.toWeight])).toEqual([
    [EVENT.canaryStep, 10, 40],
    [EVENT.canaryPromoted, 40, 100],
  ]);
  expect(Number(moves[1]?.time) - Number(moves[0]?.time)).toBeGreaterThanOrEqual(STEP_MS);
  expect([...observed].every((w) => [10, 40, 100].includes(w))).toBe(true);

  const promoted = await status(proxy);
  expect(promoted).toMatchObject({
    state: 'promoted',
    weight: 100,
    fileWeight: 10,
    steps: [10, 40, 100],
    step: 3,
    action: 'make search-v2 the route\'s "to" (and remove the canary block)',
    message: expect.stringMatching(/^reached 100 % while healthy \(error rate 0, .*\): make search-v2 the route's "to"$/),
  });
  const line = proxy.logs.find((l) => l.event === EVENT.canaryPromoted);
  expect(line).toMatchObject({ level: 40, route: 'search', fromWeight: 40, toWeight: 100 });
  expect(line?.msg).toContain("make search-v2 the route's \"to\"");
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain('ficus_canary_weight{route="search"} 100');
  await proxy.app.audit.settled();
  const audit = (await readFile(join(proxy.dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(audit.filter((r) => r.kind !== 'reload')).toEqual([expect.objectContaining({ kind: 'promotion', route: 'search', canary: 'search-v2', fromWeight: 40, toWeight: 100 })]);
});

test('without traffic the verdicts are inconclusive and the canary holds its step', async () => {
  const { proxy, v2 } = await setup();
  // Wait, by its own verdicts, for more than two stepIntervals to pass without traffic.
  const deadline = Date.now() + 5_000;
  let first: number | undefined;
  for (;;) {
    const verdict = proxy.app.store.current.canaries[0]?.lastVerdict;
    if (verdict) {
      expect(verdict.outcome).toBe('inconclusive');
      first ??= verdict.at;
      if (verdict.at - first > 2 * STEP_MS) break;
    }
    if (Date.now() > deadline) throw new Error('no verdicts');
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(await status(proxy)).toMatchObject({ state: 'running', weight: 10, step: 1, verdict: { outcome: 'inconclusive', message: '0 requests < minRequests 5' } });
  expect(v2.seen).toEqual([]);
  expect(proxy.logs.filter((l) => l.event === EVENT.canaryStep)).toEqual([]);
});
