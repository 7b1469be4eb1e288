import { describe, expect, test } from 'vitest';
import { LONGEST_P99_MS, SlidingWindow } from '../../../src/rollout/windows.js';

/** SPEC §1.4: per-side sliding windows of count, failures and a latency histogram, over an injected clock. */

function fakeClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

/** `n` outcomes, `failures` of them failed, all with the same latency. */
function feed(window: SlidingWindow, n: number, failures: number, latencyMs: number): void {
  for (let i = 0; i < n; i++) window.record(i < failures, latencyMs);
}

describe('counts', () => {
  test.each([
    { n: 0, failures: 0, errorRate: 0 },
    { n: 1, failures: 0, errorRate: 0 },
    { n: 1, failures: 1, errorRate: 1 },
    { n: 50, failures: 5, errorRate: 0.1 },
    { n: 200, failures: 3, errorRate: 0.015 },
  ])('$n requests with $failures failures: error rate $errorRate', ({ n, failures, errorRate }) => {
    const window = new SlidingWindow(60_000, fakeClock());
    feed(window, n, failures, 10);
    expect(window.stats()).toMatchObject({ requests: n, failures, errorRate });
  });

  test('with no requests, p99 and error rate are 0, not NaN', () => {
    expect(new SlidingWindow(1_000, fakeClock()).stats()).toEqual({ requests: 0, failures: 0, errorRate: 0, p99Ms: 0 });
  });
});

describe('p99', () => {
  test.each([
    { name: 'all fast', latencies: [[100, 2]], atLeast: 2, atMost: 2.5 },
    { name: 'one slow request in a hundred is the 99th percentile only if it is the 99th', latencies: [[99, 5], [1, 5_000]], atLeast: 5, atMost: 6.25 },
    { name: 'two slow ones in a hundred are', latencies: [[98, 5], [2, 800]], atLeast: 800, atMost: 1_000 },
    { name: 'below the first bound', latencies: [[10, 0.1]], atLeast: 0.1, atMost: 0.5 },
    { name: 'zero', latencies: [[10, 0]], atLeast: 0, atMost: 0.5 },
    { name: 'beyond the last bound reads as the last bound', latencies: [[10, 200 * 3_600_000]], atLeast: LONGEST_P99_MS, atMost: LONGEST_P99_MS },
  ])('$name', ({ latencies, atLeast, atMost }) => {
    const window = new SlidingWindow(60_000, fakeClock());
    for (const [n, ms] of latencies as [number, number][]) feed(window, n, 0, ms);
    const { p99Ms } = window.stats();
    expect(p99Ms).toBeGreaterThanOrEqual(atLeast);
    expect(p99Ms).toBeLessThanOrEqual(atMost);
  });

  test.each([0.7, 3, 42, 250, 799, 801, 5_000, 29_000, 600_000, 3_600_000, 24 * 3_600_000])('a constant latency of %d ms reads at most 25 % above, never below', (ms) => {
    const window = new SlidingWindow(60_000, fakeClock());
    feed(window, 100, 0, ms);
    const { p99Ms } = window.stats();
    expect(p99Ms).toBeGreaterThanOrEqual(ms);
    expect(p99Ms).toBeLessThanOrEqual(ms * 1.25 + 1e-9);
  });

  test('a latency that is not a number lands in the fastest bucket instead of reading as the slowest', () => {
    const window = new SlidingWindow(60_000, fakeClock());
    feed(window, 100, 0, Number.NaN);
    expect(window.stats().p99Ms).toBe(0.5);
  });
});

describe('the window slides with the clock', () => {
  test('outcomes older than the window are forgotten, slot by slot', () => {
    const clock = fakeClock(0);
    const window = new SlidingWindow(1_000, clock); // 10 slots of 100 ms
    feed(window, 10, 10, 5); // t = 0
    clock.advance(500);
    feed(window, 10, 0, 5); // t = 500
    expect(window.stats()).toMatchObject({ requests: 20, failures: 10 });
    clock.advance(499); // t = 999: both still in
    expect(window.stats()).toMatchObject({ requests: 20, failures: 10 });
    clock.advance(1); // t = 1000: the first slot has left
    expect(window.stats()).toMatchObject({ requests: 10, failures: 0, errorRate: 0 });
    clock.advance(500); // t = 1500: everything has
    expect(window.stats()).toEqual({ requests: 0, failures: 0, errorRate: 0, p99Ms: 0 });
  });

  test('a slot reused after a full turn starts from zero', () => {
    const clock = fakeClock(0);
    const window = new SlidingWindow(1_000, clock);
    feed(window, 7, 7, 900);
    clock.advance(1_000); // the same slot index, one turn later
    feed(window, 3, 0, 1);
    expect(window.stats()).toMatchObject({ requests: 3, failures: 0 });
    expect(window.stats().p99Ms).toBeLessThanOrEqual(1.25);
  });

  test('memory does not grow with traffic: a million outcomes fit in the same slots', () => {
    const clock = fakeClock(0);
    const window = new SlidingWindow(10_000, clock);
    for (let i = 0; i < 1_000_000; i++) {
      window.record(i % 100 === 0, 3);
      if (i % 1_000 === 0) clock.advance(1);
    }
    // The last 10 s of a clock that moved 1 s: everything is in the window.
    expect(window.stats()).toMatchObject({ requests: 1_000_000, failures: 10_000, errorRate: 0.01 });
  });
});

describe('failures in a row', () => {
  test.each([
    { outcomes: [true, true, true], expected: 3 },
    { outcomes: [true, true, false], expected: 0 },
    { outcomes: [true, false, true, true], expected: 2 },
    { outcomes: [], expected: 0 },
  ])('$outcomes → $expected', ({ outcomes, expected }) => {
    const window = new SlidingWindow(1_000, fakeClock());
    for (const failed of outcomes) window.record(failed, 1);
    expect(window.consecutiveFailures).toBe(expected);
  });

  test('the run survives the window sliding: it counts requests, not time', () => {
    const clock = fakeClock();
    const window = new SlidingWindow(1_000, clock);
    window.record(true, 1);
    clock.advance(5_000);
    window.record(true, 1);
    expect(window.consecutiveFailures).toBe(2);
  });
});

test('reset forgets the outcomes and the run of failures', () => {
  const window = new SlidingWindow(1_000, fakeClock());
  feed(window, 10, 10, 50);
  window.reset();
  expect(window.stats()).toEqual({ requests: 0, failures: 0, errorRate: 0, p99Ms: 0 });
  expect(window.consecutiveFailures).toBe(0);
  window.record(false, 1);
  expect(window.stats().requests).toBe(1);
});

test('outcomes recorded before the wall clock stepped back are not counted in the window that follows', () => {
  const clock = fakeClock(10_000_000);
  const window = new SlidingWindow(60_000, clock);
  feed(window, 50, 50, 10);
  // About an hour back (into another slot): those failures now lie in the future of every reading.
  clock.advance(-3_594_000);
  feed(window, 20, 0, 10);
  expect(window.stats()).toMatchObject({ requests: 20, failures: 0 });
});
