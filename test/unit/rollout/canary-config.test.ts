import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { formatIssue } from '../../../src/config/issues.js';
import { parseRoutes } from '../../../src/config/load.js';
import { ConfigStore } from '../../../src/config/store.js';
import type { CanaryChange } from '../../../src/rollout/canary.js';
import { tempDir } from '../../helpers/proxy.js';

/** SPEC §1.0 and §1.4: `canary.steps`, `stepInterval` and `analysis` are read, defaulted and checked. */

function fileWith(canary: string): string {
  return `version: 1
services:
  legacy: { url: http://127.0.0.1:3001 }
  search-v2: { url: http://127.0.0.1:3002 }
routes:
  - name: search
    match: { path: /search }
    to: legacy
    canary: ${canary}
  - { name: rest, match: { path: / }, to: legacy }
`;
}

function compiled(canary: string) {
  const loaded = parseRoutes(fileWith(canary), 'r.yaml', {});
  if (!loaded.ok) throw new Error(loaded.issues.map(formatIssue).join('\n'));
  const action = compile(loaded.config, 'r.yaml', loaded.hash).routes[0]?.action;
  if (action?.kind !== 'proxy' || !action.canary) throw new Error('no canary');
  return action.canary;
}

function errors(canary: string): string[] {
  const loaded = parseRoutes(fileWith(canary), 'r.yaml', {});
  return loaded.ok ? [] : loaded.issues.map(formatIssue);
}

describe('compile', () => {
  test('without analysis: interval 10s, window 1m, minRequests 20, and no threshold', () => {
    expect(compiled('{ to: search-v2, weight: 5 }')).toEqual({
      service: 'search-v2',
      weight: 5,
      seed: 'search',
      steps: undefined,
      stepIntervalMs: undefined,
      analysis: {
        intervalMs: 10_000,
        windowMs: 60_000,
        thresholds: { minRequests: 20, maxErrorRate: undefined, maxP99Ms: undefined, maxErrorRateVsStable: undefined, maxP99VsStable: undefined },
        consecutiveFailures: undefined,
      },
      fingerprint: expect.any(String),
    });
  });

  test("the SPEC's example block, every key given", () => {
    const canary = compiled(
      '{ to: search-v2, weight: 5, steps: [5, 25, 50, 100], stepInterval: 2m, analysis: { interval: 200ms, window: 2s, minRequests: 5, maxErrorRate: 0.05, maxP99: 800ms, maxErrorRateVsStable: 2, maxP99VsStable: 1.5, consecutiveFailures: 5 } }',
    );
    expect(canary).toMatchObject({
      steps: [5, 25, 50, 100],
      stepIntervalMs: 120_000,
      analysis: { intervalMs: 200, windowMs: 2_000, thresholds: { minRequests: 5, maxErrorRate: 0.05, maxP99Ms: 800, maxErrorRateVsStable: 2, maxP99VsStable: 1.5 }, consecutiveFailures: 5 },
    });
  });

  test.each([
    { name: 'the same block', a: '{ to: search-v2, weight: 5 }', b: '{ to: search-v2, weight: 5 }', same: true },
    { name: 'a new weight', a: '{ to: search-v2, weight: 5 }', b: '{ to: search-v2, weight: 10 }', same: false },
    { name: 'a new threshold', a: '{ to: search-v2, weight: 5 }', b: '{ to: search-v2, weight: 5, analysis: { maxErrorRate: 0.1 } }', same: false },
    { name: 'the same block in another layout', a: '{ to: search-v2, weight: 5 }', b: '\n      to: search-v2\n      weight: 5', same: true },
  ])('fingerprint: $name → same release: $same', ({ a, b, same }) => {
    expect(compiled(a).fingerprint === compiled(b).fingerprint).toBe(same);
  });
});

describe('validate', () => {
  test.each([
    { name: 'steps that go down', canary: '{ to: search-v2, weight: 5, steps: [5, 50, 25, 100], stepInterval: 1m }', errors: ['r.yaml:9:56 routes.0.canary.steps.2: steps go up: 25 after 50'] },
    { name: 'a repeated step', canary: '{ to: search-v2, weight: 5, steps: [5, 5], stepInterval: 1m }', errors: ['r.yaml:9:52 routes.0.canary.steps.1: steps go up: 5 after 5'] },
    { name: 'steps without stepInterval', canary: '{ to: search-v2, weight: 5, steps: [5, 100] }', errors: ['r.yaml:9:41 routes.0.canary.steps: steps need "stepInterval": how long each step lasts while the canary is healthy'] },
    { name: 'stepInterval without steps', canary: '{ to: search-v2, weight: 5, stepInterval: 1m }', errors: ['r.yaml:9:41 routes.0.canary.stepInterval: stepInterval without "steps" has nothing to step through'] },
    { name: 'a zero interval', canary: '{ to: search-v2, weight: 5, analysis: { interval: 0s } }', errors: ['r.yaml:9:63 routes.0.canary.analysis.interval: must be longer than 0'] },
    { name: 'a zero window', canary: '{ to: search-v2, weight: 5, analysis: { window: 0ms } }', errors: ['r.yaml:9:61 routes.0.canary.analysis.window: must be longer than 0'] },
    { name: 'a maxP99 no window could read', canary: '{ to: search-v2, weight: 5, analysis: { maxP99: 31h } }', errors: ['r.yaml:9:61 routes.0.canary.analysis.maxP99: at most 29h: no longer latency is told apart, so a higher maxP99 could never be exceeded'] },
    { name: 'a maxP99 of a day', canary: '{ to: search-v2, weight: 5, analysis: { maxP99: 24h } }', errors: [] },
    { name: 'a maxP99 a minute past 29h, as the message says', canary: '{ to: search-v2, weight: 5, analysis: { maxP99: 1741m } }', errors: ['r.yaml:9:61 routes.0.canary.analysis.maxP99: at most 29h: no longer latency is told apart, so a higher maxP99 could never be exceeded'] },
    { name: 'a zero stepInterval', canary: '{ to: search-v2, weight: 5, steps: [50], stepInterval: 0m }', errors: ['r.yaml:9:68 routes.0.canary.stepInterval: must be longer than 0'] },
    { name: 'an unknown analysis key', canary: '{ to: search-v2, weight: 5, analysis: { maxErrors: 3 } }', errors: [expect.stringMatching(/^r\.yaml:9:\d+ routes\.0\.canary\.analysis\.maxErrors: unknown key/)] },
    { name: 'a step above 100', canary: '{ to: search-v2, weight: 5, steps: [50, 150], stepInterval: 1m }', errors: [expect.stringMatching(/^r\.yaml:9:\d+ routes\.0\.canary\.steps\.1: /)] },
    // No traffic at 0 %, so no healthy verdict, so no step: the rollout would never start.
    { name: 'a rollout from 0 %', canary: '{ to: search-v2, weight: 0, steps: [1, 5, 100], stepInterval: 1m }', errors: [expect.stringMatching(/^r\.yaml:9:\d+ routes\.0\.canary\.weight: a rollout cannot start from 0 %: .*\(weight: 1\)$/)] },
    { name: 'a canary held at 0 % without steps', canary: '{ to: search-v2, weight: 0 }', errors: [] },
    { name: 'the full block', canary: '{ to: search-v2, weight: 5, steps: [5, 100], stepInterval: 1m, analysis: { interval: 1s, window: 1m, minRequests: 1, maxErrorRate: 0, maxP99: 1s, consecutiveFailures: 1 } }', errors: [] },
  ])('$name', ({ canary, errors: expected }) => {
    expect(errors(canary)).toEqual(expected);
  });
});

describe('runtime state across reloads', () => {
  async function open(canary: string) {
    const dir = await tempDir();
    const file = join(dir, 'routes.yaml');
    await writeFile(file, fileWith(canary));
    const changes: [string, CanaryChange][] = [];
    const store = await ConfigStore.open(file, {
      clock: { now: () => 0 },
      random: () => 0,
      serviceEvents: () => ({ ejected() {}, returned() {}, panic() {} }),
      canaryEvents: { changed: (canary, change) => changes.push([canary.route, change]) },
    });
    onTestFinished(() => store.close());
    return {
      store,
      changes,
      async reload(next: string, extra = '') {
        await writeFile(file, fileWith(next) + extra);
        expect((await store.reload('admin')).result).toBe('success');
      },
    };
  }

  test('an unchanged canary block keeps its state, ejected included, whatever else changes', async () => {
    const t = await open('{ to: search-v2, weight: 5 }');
    const before = t.store.current.canaries[0];
    before?.eject();
    await t.reload('{ to: search-v2, weight: 5 }', '  - { name: other, match: { path: /other }, to: search-v2 }\n');
    expect(t.store.current.canaries[0]).toBe(before);
    expect(t.store.current.canaries[0]?.toRecord()).toMatchObject({ state: 'ejected', weight: 0 });
    expect(t.store.current.canaries.slice(1)).toEqual([undefined, undefined]);
  });

  test('a changed canary block is a new release: running at the new weight, and the ejection ends as a readmission', async () => {
    const t = await open('{ to: search-v2, weight: 5 }');
    const before = t.store.current.canaries[0];
    before?.eject();
    await t.reload('{ to: search-v2, weight: 20 }');
    const after = t.store.current.canaries[0];
    expect(after).not.toBe(before);
    expect(after?.toRecord()).toMatchObject({ state: 'running', weight: 20 });
    expect(t.changes.map(([route, c]) => [route, c.kind, c.trigger, c.toWeight])).toEqual([
      ['search', 'ejection', 'admin', 0],
      ['search', 'readmission', 'reload', 20],
    ]);
    // The old runtime may still see requests in flight: it decides nothing that is announced.
    before?.readmit();
    expect(t.changes).toHaveLength(2);
  });

  test('a route that loses its canary retires the runtime', async () => {
    const t = await open('{ to: search-v2, weight: 5, analysis: { consecutiveFailures: 1 } }');
    const before = t.store.current.canaries[0];
    await writeFile(t.store.file, fileWith('{ to: search-v2, weight: 5 }').replace(/ {4}canary: .*\n/, ''));
    expect((await t.store.reload('admin')).result).toBe('success');
    expect(t.store.current.canaries).toEqual([undefined, undefined]);
    before?.record('canary', true, 1);
    expect(t.changes).toEqual([]);
  });
});
