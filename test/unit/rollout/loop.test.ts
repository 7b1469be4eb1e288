import { expect, test } from 'vitest';
import { compileAnalysis } from '../../../src/config/compile-rollout.js';
import { CanaryRuntime } from '../../../src/rollout/canary.js';
import { AnalysisLoop, type Timers } from '../../../src/rollout/loop.js';

/** The analysis loop: one timer, armed for the earliest canary due; driven here by hand. */

function harness() {
  let now = 0;
  const clock = { now: () => now };
  const armed: { run: () => void; ms: number; cleared: boolean }[] = [];
  const timers: Timers = {
    set(run, ms) {
      const handle = { run, ms, cleared: false };
      armed.push(handle);
      return handle;
    },
    clear(handle) {
      (handle as { cleared: boolean }).cleared = true;
    },
  };
  const canary = (route: string, intervalMs: number, maxErrorRate?: number) =>
    new CanaryRuntime(
      route,
      { service: `${route}-v2`, weight: 10, seed: route, steps: undefined, stepIntervalMs: undefined, analysis: compileAnalysis({ interval: `${intervalMs}ms`, minRequests: 1, maxErrorRate }), fingerprint: route },
      clock,
    );
  /** Fires the live timer after moving the clock by its delay, as the event loop would. */
  const fire = () => {
    const live = armed.filter((h) => !h.cleared);
    expect(live).toHaveLength(1);
    const handle = live[0] as (typeof armed)[number];
    handle.cleared = true;
    now += handle.ms;
    handle.run();
    return handle.ms;
  };
  return { clock, timers, canary, fire, armed, advance: (ms: number) => (now += ms) };
}

test('tick judges each canary that is due and says how long until the next one is', () => {
  const h = harness();
  const fast = h.canary('fast', 200, 0.1);
  const slow = h.canary('slow', 10_000, 0.1);
  const loop = new AnalysisLoop(() => [fast, undefined, slow], h.clock, h.timers);
  expect(loop.tick()).toBe(200);
  fast.record('canary', true, 1);
  slow.record('canary', true, 1);
  h.advance(200);
  expect(loop.tick()).toBe(200);
  expect(fast.state).toBe('ejected');
  expect(slow.state).toBe('running');
  h.advance(9_800);
  loop.tick();
  expect(slow.state).toBe('ejected');
});

test('with no canary, tick says so and start arms no timer', () => {
  const h = harness();
  const loop = new AnalysisLoop(() => [undefined], h.clock, h.timers);
  expect(loop.tick()).toBeUndefined();
  loop.start();
  expect(h.armed).toEqual([]);
});

test('the timer is armed for the earliest canary, judges it when it fires, and re-arms', () => {
  const h = harness();
  const a = h.canary('a', 300, 0.1);
  const b = h.canary('b', 500, 0.1);
  const loop = new AnalysisLoop(() => [a, b], h.clock, h.timers);
  loop.start();
  a.record('canary', true, 1);
  expect(h.fire()).toBe(300);
  expect(a.state).toBe('ejected');
  expect(a.lastVerdict?.at).toBe(300);
  expect(h.fire()).toBe(200); // b, at 500
  expect(b.lastVerdict?.at).toBe(500);
  expect(h.fire()).toBe(100); // a again, at 600
});

test('reschedule after a reload arms for a new canary due sooner; stop disarms for good', () => {
  const h = harness();
  let canaries = [h.canary('slow', 10_000)];
  const loop = new AnalysisLoop(() => canaries, h.clock, h.timers);
  loop.start();
  expect(h.armed.at(-1)?.ms).toBe(10_000);
  canaries = [...canaries, h.canary('fast', 200)];
  loop.reschedule();
  expect(h.armed.filter((t) => !t.cleared).map((t) => t.ms)).toEqual([200]);
  loop.stop();
  expect(h.armed.every((t) => t.cleared)).toBe(true);
  loop.reschedule();
  expect(h.armed.every((t) => t.cleared)).toBe(true);
});

test('a canary whose verdict throws is reported, and the others are still judged', () => {
  const h = harness();
  const broken = h.canary('broken', 100);
  broken.evaluate = () => {
    throw new Error('boom');
  };
  const fine = h.canary('fine', 100, 0.1);
  fine.record('canary', true, 1);
  const errors: string[] = [];
  const loop = new AnalysisLoop(() => [broken, fine], h.clock, h.timers, (error, canary) => errors.push(`${canary.route}: ${(error as Error).message}`));
  h.advance(100);
  loop.tick();
  expect(errors).toEqual(['broken: boom']);
  expect(fine.state).toBe('ejected');
});

test('a reload after the wall clock stepped back still arms the timer within one interval, not for the length of the step', () => {
  const h = harness();
  const canary = h.canary('a', 2_000, 0.1);
  const loop = new AnalysisLoop(() => [canary], h.clock, h.timers);
  loop.start();
  h.advance(-3_600_000);
  loop.reschedule();
  expect(h.armed.filter((t) => !t.cleared).map((t) => t.ms)).toEqual([2_000]);
});
