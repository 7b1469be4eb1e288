import { describe, expect, test } from 'vitest';
import { compileAnalysis } from '../../../src/config/compile-rollout.js';
import type { AnalysisSpec } from '../../../src/config/schema.js';
import type { CanaryDef } from '../../../src/config/snapshot.js';
import { CanaryRuntime, type CanaryChange } from '../../../src/rollout/canary.js';

/**
 * SPEC §1.4: a canary's effective weight, driven by a fake clock: judged every interval,
 * ejected at once after failures in a row, walked through its steps while healthy.
 */

interface Spec {
  weight?: number;
  steps?: number[];
  stepIntervalMs?: number;
  analysis?: AnalysisSpec;
}

function canaryDef({ weight = 10, steps, stepIntervalMs, analysis = {} }: Spec = {}): CanaryDef {
  return { service: 'search-v2', weight, seed: 'search', steps, stepIntervalMs, analysis: compileAnalysis({ interval: '1s', window: '10s', minRequests: 10, ...analysis }), fingerprint: 'f' };
}

function setup(spec: Spec = {}) {
  let now = 1_700_000_000_000;
  const clock = { now: () => now };
  const changes: CanaryChange[] = [];
  const canary = new CanaryRuntime('search', canaryDef(spec), clock, { changed: (c, change) => (expect(c).toBe(canary), changes.push(change)) });
  return {
    canary,
    changes,
    advance(ms: number) {
      now += ms;
      canary.evaluate(now);
    },
    /** `n` requests on one side, the first `failures` of them failed. */
    traffic(n: number, failures = 0, latencyMs = 5, side: 'canary' | 'stable' = 'canary') {
      for (let i = 0; i < n; i++) canary.record(side, i < failures, latencyMs);
    },
  };
}

test('a new canary runs at the weight written in the file, and waits one interval for its first verdict', () => {
  const { canary } = setup({ weight: 12.5 });
  expect(canary.toRecord()).toMatchObject({ state: 'running', weight: 12.5, step: -1, ejectedReason: undefined });
  expect(canary.weight).toBe(12.5);
  expect(canary.nextJudgeAt).toBe(1_700_000_000_000 + 1_000);
  expect(canary.lastVerdict).toBeUndefined();
});

describe('the periodic verdict', () => {
  test.each([
    { name: 'error rate', analysis: { maxErrorRate: 0.1 }, failures: 5, latencyMs: 5, reason: 'error_rate', message: 'error rate 0.25 > 0.1 over 20 requests' },
    { name: 'p99', analysis: { maxP99: '100ms' }, failures: 0, latencyMs: 400, reason: 'p99', message: 'p99 403.897ms > 100ms over 20 requests' },
  ] as const)('failing on $name ejects at the next interval: weight 0, with the numbers', ({ analysis, failures, latencyMs, reason, message }) => {
    const t = setup({ analysis });
    t.traffic(20, failures, latencyMs);
    t.advance(999);
    expect(t.canary.state).toBe('running');
    t.advance(1);
    expect(t.canary.toRecord()).toMatchObject({ state: 'ejected', weight: 0, ejectedReason: reason, message });
    expect(t.changes).toEqual([{ kind: 'ejection', trigger: 'analysis', reason, fromWeight: 10, toWeight: 0, message }]);
  });

  test('vs the stable side: judged against the same route’s stable window', () => {
    const t = setup({ analysis: { maxErrorRateVsStable: 2 } });
    t.traffic(20, 4); // 20 %
    t.traffic(40, 2, 5, 'stable'); // 5 %
    t.advance(1_000);
    expect(t.canary.toRecord()).toMatchObject({ state: 'ejected', ejectedReason: 'vs_stable' });
  });

  test('inconclusive (below minRequests) neither ejects nor advances', () => {
    const t = setup({ steps: [10, 50, 100], stepIntervalMs: 1_000, analysis: { maxErrorRate: 0.01 } });
    t.traffic(9, 9);
    t.advance(5_000);
    expect(t.canary.toRecord()).toMatchObject({ state: 'running', weight: 10 });
    expect(t.canary.lastVerdict).toMatchObject({ outcome: 'inconclusive', message: '9 requests < minRequests 10' });
    expect(t.changes).toEqual([]);
  });

  test('the verdict is taken once per interval, not on every call', () => {
    const t = setup({ analysis: { maxErrorRate: 0.1 } });
    t.advance(1_000);
    expect(t.canary.lastVerdict?.outcome).toBe('inconclusive');
    t.traffic(20, 20);
    t.advance(500);
    expect(t.canary.state).toBe('running');
    t.advance(500);
    expect(t.canary.state).toBe('ejected');
  });
});

describe('failures in a row eject on the request path', () => {
  test('the consecutiveFailures-th canary failure ejects at once, before any verdict', () => {
    const t = setup({ analysis: { consecutiveFailures: 3 } });
    t.canary.record('canary', true, 1);
    t.canary.record('canary', true, 1);
    expect(t.canary.weight).toBe(10);
    t.canary.record('canary', true, 1);
    expect(t.canary.toRecord()).toMatchObject({ state: 'ejected', weight: 0, ejectedReason: 'consecutive_failures', message: '3 canary failures in a row ≥ consecutiveFailures 3' });
    expect(t.changes).toMatchObject([{ kind: 'ejection', trigger: 'request', reason: 'consecutive_failures' }]);
    // Requests still in flight when it was ejected fail too: no second ejection.
    t.canary.record('canary', true, 1);
    expect(t.changes).toHaveLength(1);
  });

  test.each([
    { name: 'a success in between', outcomes: [['canary', true], ['canary', true], ['canary', false], ['canary', true], ['canary', true]] },
    { name: 'stable failures', outcomes: [['stable', true], ['stable', true], ['stable', true], ['stable', true]] },
  ] as const)('$name does not eject', ({ outcomes }) => {
    const t = setup({ analysis: { consecutiveFailures: 3 } });
    for (const [side, failed] of outcomes) t.canary.record(side, failed, 1);
    expect(t.canary.state).toBe('running');
  });

  test('without consecutiveFailures, failures in a row wait for the verdict', () => {
    const t = setup({ analysis: { maxErrorRate: 0.5 } });
    t.traffic(50, 50);
    expect(t.canary.state).toBe('running');
  });
});

describe('progressive rollout', () => {
  test('a healthy canary advances one step per stepInterval and is promoted at 100', () => {
    const t = setup({ weight: 5, steps: [5, 25, 50, 100], stepIntervalMs: 3_000, analysis: { maxErrorRate: 0.1 } });
    const weights: number[] = [];
    for (let s = 0; s < 12; s++) {
      t.traffic(20);
      t.advance(1_000);
      weights.push(t.canary.weight);
    }
    expect(weights).toEqual([5, 5, 25, 25, 25, 50, 50, 50, 100, 100, 100, 100]);
    expect(t.changes.map((c) => [c.kind, c.fromWeight, c.toWeight])).toEqual([
      ['step', 5, 25],
      ['step', 25, 50],
      ['promotion', 50, 100],
    ]);
    expect(t.canary.toRecord()).toMatchObject({ state: 'promoted', step: 3, weight: 100 });
    expect(t.changes[0]?.message).toBe('step 2/4: 5 % → 25 % (error rate 0, p99 5.821ms over 60 requests)');
    expect(t.changes[2]?.message).toMatch(/^reached 100 % while healthy \(.*\): make search-v2 the route's "to"$/);
  });

  test('restored after a restart, a rollout keeps its step countdown: the next step comes stepInterval after the last, not after the restart', () => {
    const t = setup({ weight: 5, steps: [5, 25, 50, 100], stepIntervalMs: 3_000, analysis: { maxErrorRate: 0.1 } });
    const now = 1_700_000_000_000;
    // The step to 25 % was taken 1 s before this process started, 11 s after the rollout's start.
    t.canary.restore({ state: 'running', step: 1, weight: 25, ejectedReason: undefined, message: 'step 2/4', since: now - 12_000, lastStepAt: now - 1_000 });
    const weights: number[] = [];
    for (let s = 0; s < 3; s++) {
      t.traffic(20);
      t.advance(1_000);
      weights.push(t.canary.weight);
    }
    expect(weights).toEqual([25, 50, 50]);
  });

  test.each([
    { name: 'between two steps', weight: 40, steps: [30, 60, 100] },
    { name: 'above the last step', weight: 80, steps: [10, 50] },
  ])('a file weight $name comes back from a restart as it was, before any step', ({ weight, steps }) => {
    const first = setup({ weight, steps, stepIntervalMs: 3_600_000 });
    expect(first.canary.weight).toBe(weight);
    const again = setup({ weight, steps, stepIntervalMs: 3_600_000 });
    again.canary.restore(first.canary.toRecord());
    expect(again.canary.weight).toBe(weight);
  });

  test('a restored step time from the future (a clock set back) counts from now', () => {
    const t = setup({ weight: 5, steps: [5, 25, 50, 100], stepIntervalMs: 3_000, analysis: { maxErrorRate: 0.1 } });
    t.canary.restore({ state: 'running', step: 1, weight: 25, ejectedReason: undefined, message: 'step 2/4', since: 1_700_000_000_000, lastStepAt: 1_700_000_000_000 + 3_600_000 });
    const weights: number[] = [];
    for (let s = 0; s < 3; s++) {
      t.traffic(20);
      t.advance(1_000);
      weights.push(t.canary.weight);
    }
    expect(weights).toEqual([25, 25, 50]);
  });

  test('a weight between steps continues from the next step up; steps that stop below 100 hold there', () => {
    const t = setup({ weight: 10, steps: [5, 25, 50], stepIntervalMs: 1_000 });
    const weights: number[] = [];
    for (let s = 0; s < 4; s++) {
      t.traffic(20);
      t.advance(1_000);
      weights.push(t.canary.weight);
    }
    expect(weights).toEqual([25, 50, 50, 50]);
    expect(t.canary.state).toBe('running');
  });

  test('an interval without traffic holds the step; the step is taken on the first healthy verdict after', () => {
    const t = setup({ weight: 5, steps: [5, 50], stepIntervalMs: 1_000 });
    t.advance(10_000);
    expect(t.canary.weight).toBe(5);
    t.traffic(20);
    t.advance(1_000);
    expect(t.canary.weight).toBe(50);
  });

  test('failing at a step ejects; readmitted, the rollout starts over from the file’s weight with fresh windows', () => {
    const t = setup({ weight: 5, steps: [5, 25, 100], stepIntervalMs: 1_000, analysis: { maxErrorRate: 0.1 } });
    t.traffic(20);
    t.advance(1_000);
    expect(t.canary.weight).toBe(25);
    t.traffic(20, 20);
    t.advance(1_000);
    expect(t.canary.toRecord()).toMatchObject({ state: 'ejected', weight: 0, ejectedReason: 'error_rate' });
    // While ejected, nothing is judged and nothing advances.
    t.traffic(40);
    t.advance(5_000);
    expect(t.canary.toRecord()).toMatchObject({ state: 'ejected', weight: 0 });

    expect(t.canary.readmit()).toBe(true);
    expect(t.canary.toRecord()).toMatchObject({ state: 'running', weight: 5, step: 0, ejectedReason: undefined, message: 'readmitted at 5 % (was ejected: error_rate)' });
    expect(t.canary.canaryWindow.stats().requests).toBe(0);
    expect(t.changes.at(-1)).toEqual({ kind: 'readmission', trigger: 'admin', reason: 'error_rate', fromWeight: 0, toWeight: 5, message: 'readmitted at 5 % (was ejected: error_rate)' });
  });

  test('a promoted canary is still watched: failing ejects it', () => {
    const t = setup({ weight: 100, steps: [50, 100], stepIntervalMs: 1_000, analysis: { maxErrorRate: 0.1 } });
    expect(t.canary.state).toBe('promoted');
    t.traffic(20, 20);
    t.advance(1_000);
    expect(t.canary.toRecord()).toMatchObject({ state: 'ejected', weight: 0 });
  });
});

describe('an operator’s word', () => {
  test('eject is manual and idempotent; readmit only readmits an ejected canary', () => {
    const t = setup();
    expect(t.canary.readmit()).toBe(false);
    expect(t.canary.eject()).toBe(true);
    expect(t.canary.toRecord()).toMatchObject({ state: 'ejected', weight: 0, ejectedReason: 'manual', message: 'ejected by an operator' });
    expect(t.canary.eject()).toBe(false);
    expect(t.changes).toEqual([{ kind: 'ejection', trigger: 'admin', reason: 'manual', fromWeight: 10, toWeight: 0, message: 'ejected by an operator' }]);
    expect(t.canary.readmit()).toBe(true);
    expect(t.canary.weight).toBe(10);
  });
});

describe('across reloads and restarts', () => {
  test('a runtime replacing an ejected one (a new canary block) announces the readmission; replacing a running one says nothing', () => {
    const ejected = setup();
    ejected.canary.eject();
    const fresh = setup({ weight: 20 });
    fresh.canary.succeed(ejected.canary);
    expect(fresh.changes).toEqual([
      { kind: 'readmission', trigger: 'reload', reason: 'manual', fromWeight: 0, toWeight: 20, message: 'a new canary block in the file ends the ejection (manual); starting at 20 %' },
    ]);
    const other = setup();
    other.canary.succeed(setup().canary);
    expect(other.changes).toEqual([]);
  });

  test('a retired runtime (replaced by a reload) decides silently', () => {
    const t = setup({ analysis: { consecutiveFailures: 1 } });
    t.canary.retire();
    t.canary.record('canary', true, 1);
    expect(t.canary.state).toBe('ejected');
    expect(t.changes).toEqual([]);
  });

  test.each([
    { record: { state: 'ejected', step: 1, weight: 0, ejectedReason: 'p99', message: 'p99 900ms > 800ms', since: 42, lastStepAt: 40 }, weight: 0 },
    { record: { state: 'running', step: 1, weight: 25, ejectedReason: undefined, message: 'step 2/3', since: 42, lastStepAt: 40 }, weight: 25 },
    { record: { state: 'promoted', step: 2, weight: 100, ejectedReason: undefined, message: 'reached 100 %', since: 42, lastStepAt: 42 }, weight: 100 },
  ] as const)('the $record.state record written by toRecord is taken back by restore', ({ record, weight }) => {
    const t = setup({ weight: 5, steps: [5, 25, 100], stepIntervalMs: 1_000 });
    t.canary.restore(record);
    expect(t.canary.weight).toBe(weight);
    expect(t.canary.toRecord()).toEqual(record);
    expect(JSON.parse(JSON.stringify(t.canary.toRecord()))).toEqual(JSON.parse(JSON.stringify(record)));
  });
});

describe('a wall clock stepped back (NTP, a resumed VM)', () => {
  function stepped(spec: Spec) {
    let now = 1_700_000_000_000;
    const canary = new CanaryRuntime('search', canaryDef(spec), { now: () => now });
    // The step back: every time kept so far now lies an hour ahead.
    now -= 3_600_000;
    return { canary, advance: (ms: number) => canary.evaluate((now += ms)) };
  }

  test('a failing canary is still judged one interval later, not an hour later', () => {
    const { canary, advance } = stepped({ weight: 50, analysis: { maxErrorRate: 0.1 } });
    for (let i = 0; i < 100; i++) canary.record('canary', true, 5);
    advance(1_000);
    expect(canary.state).toBe('ejected');
  });

  test('a healthy rollout still takes its next step after stepInterval', () => {
    const { canary, advance } = stepped({ weight: 10, steps: [10, 50, 100], stepIntervalMs: 2_000, analysis: { maxErrorRate: 0.1 } });
    for (let s = 0; s < 10; s++) {
      for (let i = 0; i < 20; i++) canary.record('canary', false, 5);
      advance(1_000);
    }
    expect(canary.weight).toBeGreaterThan(10);
  });
});
