import { afterEach, describe, expect, test, vi } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { guardDef } from '../../../src/config/compile-rollout.js';
import { RoutesFile, type AnalysisSpec } from '../../../src/config/schema.js';
import type { Colour, ServiceDef, Snapshot } from '../../../src/config/snapshot.js';
import type { Clock } from '../../../src/observe/clock.js';
import { guardConfigOf, type Guard, type GuardEvent } from '../../../src/rollout/guard.js';
import { Guards } from '../../../src/rollout/guards.js';

/**
 * The guarded cutover of a blue/green service (SPEC §1.1), driven by a clock the test turns:
 * after `active` changes the new colour is judged for `window`; failing rolls back to the
 * previous colour until the service's definition changes again.
 */
const BLUE = 'http://127.0.0.1:3201';
const GREEN = 'http://127.0.0.1:3202';
const GUARD: AnalysisSpec = { interval: '10s', window: '1m', minRequests: 20, maxErrorRate: 0.05, consecutiveFailures: 5 };

interface Shape {
  active?: Colour;
  guard?: AnalysisSpec | null;
  blue?: string;
  green?: string;
  preview?: string;
}

function snapshot(shape: Shape = {}): Snapshot {
  const orders = {
    blue: { url: shape.blue ?? BLUE },
    green: { url: shape.green ?? GREEN },
    active: shape.active ?? 'blue',
    ...(shape.guard === null ? {} : { guard: shape.guard ?? GUARD }),
    ...(shape.preview !== undefined ? { preview: { header: 'x-preview', token: shape.preview } } : {}),
  };
  const source = RoutesFile.parse({
    version: 1,
    services: { orders, legacy: { url: 'http://127.0.0.1:3001' } },
    routes: [{ name: 'rest', match: { path: '/' }, to: 'orders' }],
  });
  return compile(source, 'routes.yaml', 'hash');
}

/** Guards over a clock the test advances, reconciled with `shape` as the file at start. */
function setup(shape: Shape = {}) {
  let now = 1_700_000_000_000;
  const clock: Clock = { now: () => now };
  const guards = new Guards(clock);
  const watches = guards.reconcile(snapshot(shape));
  const guard = () => guards.get('orders') as Guard;
  /** `n` requests served by `colour`, `failures` of them failed, spread evenly (all of them in a row when n = failures). */
  const feed = (colour: Colour, n: number, failures = 0, latencyMs = 10): GuardEvent[] => {
    const events: GuardEvent[] = [];
    for (let i = 0; i < n; i++) {
      const failed = Math.floor(((i + 1) * failures) / n) > Math.floor((i * failures) / n);
      const decision = guard().record(colour, failed, latencyMs);
      if (decision.kind !== 'none') events.push(decision);
    }
    return events;
  };
  const advance = (ms: number) => {
    now += ms;
  };
  const reload = (next: Shape) => guards.reconcile(snapshot(next));
  return { clock, guards, guard, feed, advance, reload, watches, now: () => now };
}

describe('settings', () => {
  test.each([
    ['defaults (SPEC §1.0)', {}, { intervalMs: 10_000, windowMs: 60_000, analysisWindowMs: 60_000, minRequests: 20 }],
    ['a short guard judges over its whole window', { window: '2s', interval: '200ms' }, { intervalMs: 200, windowMs: 2_000, analysisWindowMs: 2_000, minRequests: 20 }],
    ['a long guard judges over the last minute', { window: '5m' }, { intervalMs: 10_000, windowMs: 300_000, analysisWindowMs: 60_000, minRequests: 20 }],
    ['minRequests as given', { minRequests: 3 }, { intervalMs: 10_000, windowMs: 60_000, analysisWindowMs: 60_000, minRequests: 3 }],
  ] as const)('%s', (_name, spec: AnalysisSpec, expected) => {
    const def = guardDef(spec);
    expect({ intervalMs: def.intervalMs, windowMs: def.windowMs, analysisWindowMs: def.analysisWindowMs, minRequests: def.thresholds.minRequests }).toEqual(expected);
  });

  test('thresholds are judged only when given; maxP99 is in milliseconds', () => {
    expect(guardDef({ maxP99: '800ms', maxErrorRateVsStable: 2 })).toMatchObject({
      thresholds: { maxErrorRate: undefined, maxP99Ms: 800, maxErrorRateVsStable: 2, maxP99VsStable: undefined },
      consecutiveFailures: undefined,
    });
  });

  test('only a blue/green service with a guard is guarded', () => {
    const snap = snapshot();
    expect(guardConfigOf(snap.services.get('legacy') as ServiceDef)).toBeUndefined();
    expect(guardConfigOf(snapshot({ guard: null }).services.get('orders') as ServiceDef)).toBeUndefined();
    expect(guardConfigOf(snap.services.get('orders') as ServiceDef)).toMatchObject({ service: 'orders', active: 'blue' });
  });

  const fingerprint = (shape: Shape) => {
    const snap = snapshot(shape);
    return guardConfigOf(snap.services.get('orders') as ServiceDef)?.fingerprint;
  };
  test.each([
    ['active', { active: 'green' }, true],
    ['the preview door', { preview: 'secret' }, true],
    ["green's endpoints", { green: 'http://127.0.0.1:4000' }, false],
    ["blue's endpoints", { blue: 'http://127.0.0.1:4000' }, false],
    ['the guard', { guard: { ...GUARD, maxErrorRate: 0.1 } }, false],
  ] as const)('the definition fingerprint, changing %s: kept = %s', (_name, shape: Shape, kept) => {
    expect(fingerprint(shape) === fingerprint({})).toBe(kept);
  });
});

describe('verdicts after a cutover', () => {
  test.each([
    { name: 'error rate above maxErrorRate', guard: { maxErrorRate: 0.05 }, blue: [100, 0, 10], green: [30, 10, 10], reason: 'error_rate', says: 'error rate 0.333 > 0.05 over 30 requests' },
    { name: 'p99 above maxP99', guard: { maxP99: '500ms' }, blue: [100, 0, 10], green: [30, 0, 900], reason: 'p99', says: '> 500ms over 30 requests' },
    { name: 'error rate against the previous colour', guard: { maxErrorRateVsStable: 2 }, blue: [100, 1, 10], green: [40, 4, 10], reason: 'vs_stable', says: "× stable's 0.01 > 2×" },
    { name: 'p99 against the previous colour', guard: { maxP99VsStable: 2 }, blue: [100, 0, 10], green: [40, 0, 100], reason: 'vs_stable', says: "× stable's" },
    { name: 'healthy', guard: { maxErrorRate: 0.05, maxP99: '500ms' }, blue: [100, 0, 10], green: [40, 1, 50], reason: undefined, says: undefined },
    { name: 'too few requests to judge', guard: { maxErrorRate: 0.05 }, blue: [100, 0, 10], green: [19, 19, 10], reason: undefined, says: undefined },
    { name: 'no comparison while the previous colour had too little traffic', guard: { maxErrorRateVsStable: 2 }, blue: [5, 0, 10], green: [40, 4, 10], reason: undefined, says: undefined },
  ])('$name', ({ guard, blue, green, reason, says }) => {
    const spec = { interval: '10s', window: '1m', ...guard } as AnalysisSpec;
    const t = setup({ guard: spec });
    t.feed('blue', ...(blue as [number, number, number]));
    const watches = t.reload({ guard: spec, active: 'green' });
    expect(watches).toEqual([{ service: 'orders', from: 'blue', to: 'green', until: t.now() + 60_000, message: 'guarding green for 1m after the cutover from blue; failing rolls back to blue' }]);
    expect(t.guard().state).toBe('guarding');
    t.feed('green', ...(green as [number, number, number]));
    t.advance(10_000);
    const events = t.guards.tick();
    if (reason === undefined) {
      expect(events).toEqual([]);
      expect(t.guard().state).toBe('guarding');
      expect(t.guard().effectiveActive('green')).toBe('green');
    } else {
      expect(events).toEqual([expect.objectContaining({ kind: 'rollback', service: 'orders', from: 'green', to: 'blue', reason })]);
      expect(events[0]?.message).toContain('green rolled back to blue: ');
      expect(events[0]?.message).toContain(says);
      expect(t.guard().state).toBe('rolled-back');
      expect(t.guard().effectiveActive('green')).toBe('blue');
    }
  });

  test('a verdict is taken each interval, not before', () => {
    const t = setup();
    t.reload({ active: 'green' });
    t.feed('green', 40, 20);
    t.advance(9_999);
    expect(t.guards.tick()).toEqual([]);
    t.advance(1);
    expect(t.guards.tick()).toMatchObject([{ kind: 'rollback', reason: 'error_rate' }]);
  });

  test('a rollback is shown in the status with its reason and numbers', () => {
    const t = setup();
    t.reload({ active: 'green' });
    t.feed('green', 40, 20);
    t.advance(10_000);
    t.guards.tick();
    expect(t.guard().status()).toEqual({
      state: 'rolled-back',
      active: 'blue',
      since: new Date(t.now()).toISOString(),
      rolledBackFrom: 'green',
      reason: 'error_rate',
      message: 'green rolled back to blue: error rate 0.5 > 0.05 over 40 requests',
    });
    // A request that started on an older snapshot keeps that snapshot's colour.
    expect(t.guard().effectiveActive('blue')).toBe('blue');
  });

  test('the window over without failing: stable, and later failures roll nothing back', () => {
    const t = setup();
    t.reload({ active: 'green' });
    for (let i = 0; i < 6; i++) {
      t.feed('green', 30, 0);
      t.advance(10_000);
      const events = t.guards.tick();
      if (i < 5) expect(events).toEqual([]);
      else expect(events).toEqual([expect.objectContaining({ kind: 'passed', service: 'orders', colour: 'green' })]);
    }
    expect(t.guard().state).toBe('stable');
    expect(t.guard().status()).toEqual({ state: 'stable', active: 'green', since: new Date(t.now()).toISOString() });
    expect(t.feed('green', 10, 10)).toEqual([]);
    t.advance(10_000);
    expect(t.guards.tick()).toEqual([]);
    expect(t.guard().effectiveActive('green')).toBe('green');
  });

  test('a quiet window ends stable: too little traffic is no evidence of harm', () => {
    const t = setup();
    t.reload({ active: 'green' });
    t.advance(50_000);
    t.feed('green', 3, 1);
    t.advance(10_000);
    expect(t.guards.tick()).toMatchObject([{ kind: 'passed', message: expect.stringContaining('3 requests < minRequests 20') }]);
  });

  test('the last verdict falls at the end of the window, even off the interval', () => {
    const t = setup({ guard: { ...GUARD, window: '15s' } });
    t.reload({ guard: { ...GUARD, window: '15s' }, active: 'green' });
    t.advance(10_000);
    expect(t.guards.tick()).toEqual([]);
    t.advance(5_000);
    expect(t.guard().dueAt).toBe(t.now());
    expect(t.guards.tick()).toMatchObject([{ kind: 'passed' }]);
  });

  test("the new colour's preview traffic before the cutover is forgotten", () => {
    const t = setup();
    t.feed('green', 40, 40);
    t.reload({ active: 'green' });
    t.feed('green', 20, 0);
    t.advance(10_000);
    expect(t.guards.tick()).toEqual([]);
  });
});

describe('failures in a row', () => {
  test('the Nth failure of the new colour rolls back at once, without a verdict', () => {
    const t = setup();
    t.reload({ active: 'green' });
    expect(t.feed('green', 4, 4)).toEqual([]);
    const events = t.feed('green', 1, 1);
    expect(events).toEqual([expect.objectContaining({ kind: 'rollback', from: 'green', to: 'blue', reason: 'consecutive_failures', message: 'green rolled back to blue: 5 failures in a row >= consecutiveFailures 5' })]);
    expect(t.guard().effectiveActive('green')).toBe('blue');
    // Rolled back once: more failures decide nothing more.
    expect(t.feed('green', 10, 10)).toEqual([]);
  });

  test.each([
    ['a success in between', (t: ReturnType<typeof setup>) => [...t.feed('green', 4, 4), ...t.feed('green', 1, 0), ...t.feed('green', 4, 4)]],
    ["failures of the previous colour (preview traffic)", (t: ReturnType<typeof setup>) => t.feed('blue', 10, 10)],
    ['failures after the window', (t: ReturnType<typeof setup>) => (t.advance(60_000), t.feed('green', 10, 10))],
  ])('no rollback for %s', (_name, act) => {
    const t = setup({ guard: { ...GUARD, maxErrorRate: undefined } });
    t.reload({ guard: { ...GUARD, maxErrorRate: undefined }, active: 'green' });
    expect(act(t)).toEqual([]);
    expect(t.guard().state).toBe('guarding');
  });

  test('without consecutiveFailures, failures wait for the verdict', () => {
    const t = setup({ guard: { ...GUARD, consecutiveFailures: undefined } });
    t.reload({ guard: { ...GUARD, consecutiveFailures: undefined }, active: 'green' });
    expect(t.feed('green', 50, 50)).toEqual([]);
  });
});

describe('across reloads', () => {
  /** Rolled back from green to blue, the file still saying green. */
  function rolledBack() {
    const t = setup();
    t.reload({ active: 'green' });
    t.feed('green', 5, 5);
    expect(t.guard().state).toBe('rolled-back');
    t.advance(1_000);
    return t;
  }

  test('the first configuration is stable on its active colour, whichever it is', () => {
    const t = setup({ active: 'green' });
    expect(t.watches).toEqual([]);
    expect(t.guard().state).toBe('stable');
    expect(t.guard().effectiveActive('green')).toBe('green');
  });

  test.each([
    ['a reload with nothing changed', {}],
    ['a new preview token', { preview: 'fresh' }],
  ] as const)('a rollback holds through %s: the same guard', (_name, change) => {
    const t = rolledBack();
    const before = t.guard();
    expect(t.reload({ active: 'green', ...change })).toEqual([]);
    expect(t.guard()).toBe(before);
    expect(t.guard().effectiveActive('green')).toBe('blue');
  });

  test.each([
    ['active set back to blue', { active: 'blue' }, 'stable', 'blue', false],
    ['a fixed green', { active: 'green', green: 'http://127.0.0.1:4000' }, 'guarding', 'green', true],
    ['new guard thresholds', { active: 'green', guard: { ...GUARD, maxErrorRate: 0.2 } }, 'guarding', 'green', true],
  ] as const)('a rollback ends with %s', (_name, change: Shape, state, active, watched) => {
    const t = rolledBack();
    const watches = t.reload(change);
    expect(watches).toEqual(watched ? [expect.objectContaining({ from: 'blue', to: 'green', until: t.now() + 60_000 })] : []);
    expect(t.guard().state).toBe(state);
    expect(t.guard().effectiveActive(change.active as Colour)).toBe(active);
  });

  test("a new release of the inactive colour keeps the active colour's window to compare with", () => {
    const guard = { ...GUARD, maxErrorRate: undefined, maxErrorRateVsStable: 2 };
    const t = setup({ guard });
    t.feed('blue', 100, 1);
    expect(t.reload({ guard, green: 'http://127.0.0.1:4000' })).toEqual([]);
    t.reload({ guard, green: 'http://127.0.0.1:4000', active: 'green' });
    t.feed('green', 40, 4);
    t.advance(10_000);
    expect(t.guards.tick()).toMatchObject([{ kind: 'rollback', reason: 'vs_stable' }]);
  });

  test('a request that started on the snapshot before a cutover keeps that snapshot\'s colour', () => {
    const t = setup();
    t.reload({ active: 'green' });
    expect(t.guard().effectiveActive('blue')).toBe('blue');
    expect(t.guard().effectiveActive('green')).toBe('green');
  });

  test('a cutover back during the guard is a cutover of its own, from the colour serving', () => {
    const t = setup();
    t.reload({ active: 'green' });
    t.advance(5_000);
    expect(t.reload({ active: 'blue' })).toEqual([expect.objectContaining({ from: 'green', to: 'blue' })]);
    expect(t.guard().status()).toMatchObject({ state: 'guarding', active: 'blue', rollbackTo: 'green' });
  });

  test('a new release of the guarded colour restarts the guard, still ready to return to the previous colour', () => {
    const guard = { ...GUARD, window: '5m', maxErrorRate: undefined, maxErrorRateVsStable: 2 };
    const t = setup({ guard });
    t.feed('blue', 100, 1);
    t.reload({ guard, active: 'green' });
    t.advance(90_000);
    const watches = t.reload({ guard, active: 'green', green: 'http://127.0.0.1:4000' });
    expect(watches).toEqual([expect.objectContaining({ from: 'blue', to: 'green', until: t.now() + 300_000 })]);
    // Blue's live traffic has left its window by now: the comparison is still with what blue
    // did before the first cutover.
    t.feed('green', 40, 4);
    t.advance(10_000);
    expect(t.guards.tick()).toMatchObject([{ kind: 'rollback', reason: 'vs_stable', to: 'blue' }]);
  });

  test('without a guard, or no longer blue/green, a service has no guard', () => {
    const t = setup();
    t.reload({ guard: null });
    expect(t.guards.get('orders')).toBeUndefined();
    expect(t.guards.get('legacy')).toBeUndefined();
    expect(t.guards.toJSON()).toEqual({});
  });
});

describe('state across a restart', () => {
  /** The state file's `services` after `before`, read back by a fresh process on `shape`. */
  function restart(before: (t: ReturnType<typeof setup>) => void, shape: Shape = { active: 'green' }, edit?: (saved: Record<string, unknown>) => void) {
    const t = setup();
    before(t);
    const saved = JSON.parse(JSON.stringify(t.guards.toJSON())) as Record<string, unknown>;
    edit?.(saved);
    t.advance(1_000);
    const guards = new Guards(t.clock);
    const watches = guards.reconcile(snapshot(shape), saved);
    return { t, guards, guard: guards.get('orders') as Guard, watches, saved };
  }

  type Setup = ReturnType<typeof setup>;
  test.each([
    ['stable', (t: Setup): void => (t.reload({ active: 'green' }), t.advance(60_000), void t.guards.tick())],
    ['guarding', (t: Setup): void => void t.reload({ active: 'green' })],
    ['rolled-back', (t: Setup): void => (t.reload({ active: 'green' }), void t.feed('green', 5, 5))],
  ] as const)('a %s guard comes back as it was', (state, before) => {
    const { guard, watches, saved } = restart(before);
    expect(guard.state).toBe(state);
    expect(guard.toJSON()).toEqual(saved.orders);
    expect(watches).toEqual([]);
  });

  test('a restored rollback keeps serving the previous colour', () => {
    const { guard } = restart((t) => (t.reload({ active: 'green' }), void t.feed('green', 5, 5)));
    expect(guard.effectiveActive('green')).toBe('blue');
  });

  test('a restored guard ends at the time the first process set', () => {
    const { t, guards } = restart((t) => void t.reload({ active: 'green' }));
    t.advance(58_999);
    expect(guards.tick().filter((e) => e.kind === 'passed')).toEqual([]);
    t.advance(1);
    expect(guards.tick()).toMatchObject([{ kind: 'passed', colour: 'green' }]);
  });

  test("a file whose `active` changed while ficus was down: a cutover from the restored colour", () => {
    const { guard, watches } = restart((t) => (t.reload({ active: 'green' }), void t.feed('green', 5, 5)), { active: 'blue' });
    expect(watches).toEqual([]);
    expect(guard.state).toBe('stable');
    expect(guard.effectiveActive('blue')).toBe('blue');
  });

  test('a rollback whose rolled-back colour was fixed while ficus was down: the fix is watched, as a reload would watch it', () => {
    const { guard, watches } = restart((t) => (t.reload({ active: 'green' }), void t.feed('green', 5, 5)), { active: 'green', green: 'http://127.0.0.1:4000' });
    expect(watches).toMatchObject([{ service: 'orders', from: 'blue', to: 'green' }]);
    expect(guard.state).toBe('guarding');
    expect(guard.effectiveActive('green')).toBe('green');
  });

  test('a stable record whose colours changed while ficus was down, `active` unchanged: stable on the file', () => {
    const { guard, watches } = restart((t) => (t.reload({ active: 'green' }), t.advance(60_000), void t.guards.tick()), { active: 'green', green: 'http://127.0.0.1:4000' });
    expect(watches).toEqual([]);
    expect(guard.state).toBe('stable');
    expect(guard.effectiveActive('green')).toBe('green');
  });

  test.each([
    ['a malformed record', { active: 'green' }, (saved: Record<string, unknown>): void => void (saved.orders = { ...(saved.orders as object), state: 'sideways' })],
    ['a record that is not an object', { active: 'green' }, (saved: Record<string, unknown>): void => void (saved.orders = 'rolled-back')],
    ['a rollback to the colour it rolled back from', { active: 'green' }, (saved: Record<string, unknown>): void => void (saved.orders = { ...(saved.orders as object), active: 'green' })],
    ['a guarding record without its end', { active: 'green' }, (saved: Record<string, unknown>): void => void (saved.orders = { ...(saved.orders as object), state: 'guarding', until: null })],
  ] as const)('%s is ignored: stable on the file', (_name, shape: Shape, edit) => {
    const { guard, watches } = restart((t) => (t.reload({ active: 'green' }), void t.feed('green', 5, 5)), shape, edit);
    expect(watches).toEqual([]);
    expect(guard.state).toBe('stable');
    expect(guard.effectiveActive('green')).toBe('green');
  });
});

test('a guard whose wall clock stepped back an hour still takes its verdict one interval later', () => {
  let now = 1_700_000_000_000;
  const guards = new Guards({ now: () => now });
  guards.reconcile(snapshot());
  guards.reconcile(snapshot({ active: 'green' }));
  const guard = guards.get('orders') as Guard;
  now -= 3_600_000;
  for (let i = 0; i < 100; i++) guard.record('green', i % 2 === 0, 5);
  now += 10_000;
  expect(guard.dueAt).toBeLessThanOrEqual(now);
  guards.tick();
  expect(guard.state).toBe('rolled-back');
});

test('after the wall clock stepped back an hour, the watch still ends one window later', () => {
  let now = 1_700_000_000_000;
  const guards = new Guards({ now: () => now });
  guards.reconcile(snapshot());
  guards.reconcile(snapshot({ active: 'green' }));
  const guard = guards.get('orders') as Guard;
  now -= 3_600_000;
  // A healthy minute and more of verdicts (window 1m, interval 10s).
  for (let tick = 0; tick < 7; tick++) {
    for (let i = 0; i < 30; i++) guard.record('green', false, 5);
    now += 10_000;
    guards.tick();
  }
  expect(guard.state).toBe('stable');
});

describe('the timer', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  test('each verdict is taken when it is due, and none is planned while nothing is guarded', () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const clock: Clock = { now: () => Date.now() };
    const guards = new Guards(clock);
    const events: GuardEvent[] = [];
    guards.reconcile(snapshot());
    guards.start((event) => events.push(event));
    expect(vi.getTimerCount()).toBe(0);

    guards.reconcile(snapshot({ active: 'green' }));
    expect(vi.getTimerCount()).toBe(1);
    const guard = guards.get('orders') as Guard;
    for (let i = 0; i < 40; i++) guard.record('green', i % 2 === 0, 10);
    vi.advanceTimersByTime(9_999);
    expect(events).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(events).toMatchObject([{ kind: 'rollback', reason: 'error_rate' }]);
    expect(vi.getTimerCount()).toBe(0);

    guards.reconcile(snapshot({ active: 'green', green: 'http://127.0.0.1:4000' }));
    expect(vi.getTimerCount()).toBe(1);
    guards.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  test('a throwing listener does not stop the guards', () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const guards = new Guards({ now: () => Date.now() });
    guards.reconcile(snapshot());
    let calls = 0;
    guards.start(() => {
      calls++;
      throw new Error('listener failed');
    });
    guards.reconcile(snapshot({ active: 'green' }));
    vi.advanceTimersByTime(60_000);
    expect(calls).toBe(1);
    expect(guards.get('orders')?.state).toBe('stable');
    guards.stop();
  });
});
