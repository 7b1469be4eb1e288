import { Pool } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import type { Clock } from '../../../src/observe/clock.js';
import { Endpoint } from '../../../src/upstream/endpoint.js';
import { BASE_EJECTION_MS, MAX_EJECTION_MS, OutlierDetector } from '../../../src/upstream/outlier.js';

/** A detector over `n` endpoints with a clock and randomness the test turns by hand. */
function setup(n: number, threshold = 3, draws: number[] = []) {
  let now = 1_000_000;
  const clock: Clock = { now: () => now };
  const random = () => draws.shift() ?? 0;
  const events: string[] = [];
  const durations = new Map<Endpoint, number>();
  const endpoints = Array.from({ length: n }, (_, i) => {
    const origin = `http://127.0.0.1:${10_000 + i}`;
    const pool = new Pool(origin);
    onTestFinished(() => pool.destroy());
    return new Endpoint({ origin, basePath: '' }, pool);
  });
  const detector = new OutlierDetector(endpoints, threshold, clock, random, {
    ejected(endpoint, durationMs) {
      durations.set(endpoint, durationMs);
      events.push(`ejected ${endpoints.indexOf(endpoint)} ${durationMs}`);
    },
    returned(endpoint) {
      events.push(`returned ${endpoints.indexOf(endpoint)}`);
    },
  });
  const fail = (i: number, times = 1) => {
    for (let k = 0; k < times; k++) detector.failure(endpoints[i] as Endpoint);
  };
  const advance = (ms: number) => {
    now += ms;
    detector.refresh(now);
  };
  const ejected = () => endpoints.map((e) => e.ejectedUntil > now);
  return { detector, endpoints, events, durations, fail, advance, ejected, now: () => now };
}

test('an endpoint is ejected after `threshold` failures in a row, not before', () => {
  const t = setup(2, 3);
  t.fail(0, 2);
  expect(t.ejected()).toEqual([false, false]);
  t.fail(0);
  expect(t.ejected()).toEqual([true, false]);
  expect(t.events).toEqual([`ejected 0 ${BASE_EJECTION_MS}`]);
});

test('a success in between starts the count again', () => {
  const t = setup(2, 3);
  t.fail(0, 2);
  t.detector.success(t.endpoints[0] as Endpoint);
  t.fail(0, 2);
  expect(t.ejected()).toEqual([false, false]);
  t.fail(0);
  expect(t.ejected()).toEqual([true, false]);
});

test.each([
  { times: 1, random: 0, ms: 30_000 },
  { times: 1, random: 0.5, ms: 31_500 },
  { times: 1, random: 0.999, ms: 32_997 },
  { times: 2, random: 0, ms: 60_000 },
  { times: 3, random: 0, ms: 90_000 },
  { times: 10, random: 0, ms: MAX_EJECTION_MS },
  { times: 12, random: 0, ms: MAX_EJECTION_MS },
  { times: 12, random: 0.5, ms: MAX_EJECTION_MS * 1.05 },
])('ejection number $times lasts 30 s × times (capped), plus up to 10 % jitter: random $random → $ms ms', ({ times, random, ms }) => {
  const t = setup(2, 1, [...Array(times - 1).fill(0), random]);
  for (let k = 1; k <= times; k++) {
    t.fail(0);
    expect(t.endpoints[0]?.timesEjected).toBe(k);
    if (k < times) t.advance(t.durations.get(t.endpoints[0] as Endpoint) ?? 0);
  }
  expect(t.durations.get(t.endpoints[0] as Endpoint)).toBe(ms);
});

test('an ejected endpoint returns when its time is up, with its failure count reset', () => {
  const t = setup(2, 3);
  t.fail(0, 3);
  t.advance(BASE_EJECTION_MS - 1);
  expect(t.ejected()).toEqual([true, false]);
  t.advance(1);
  expect(t.ejected()).toEqual([false, false]);
  expect(t.events).toEqual([`ejected 0 ${BASE_EJECTION_MS}`, 'returned 0']);
  expect(t.endpoints[0]?.consecutiveFailures).toBe(0);
  // A fresh run of failures is needed to eject it again, and the second time lasts longer.
  t.fail(0, 2);
  expect(t.ejected()).toEqual([false, false]);
  t.fail(0);
  expect(t.ejected()).toEqual([true, false]);
  expect(t.events.at(-1)).toBe(`ejected 0 ${2 * BASE_EJECTION_MS}`);
});

test('failures reported while ejected (requests still in flight) neither extend nor repeat the ejection', () => {
  const t = setup(2, 1);
  t.fail(0);
  const until = t.endpoints[0]?.ejectedUntil;
  t.fail(0, 5);
  expect(t.endpoints[0]?.ejectedUntil).toBe(until);
  expect(t.endpoints[0]?.timesEjected).toBe(1);
  expect(t.events).toHaveLength(1);
});

test.each([
  { n: 2, max: 1 },
  { n: 3, max: 1 },
  { n: 4, max: 2 },
  { n: 5, max: 2 },
  { n: 10, max: 5 },
])('never more than half of $n endpoints are ejected at once (at most $max)', ({ n, max }) => {
  const t = setup(n, 1);
  for (let i = 0; i < n; i++) t.fail(i, 3);
  expect(t.ejected().filter(Boolean)).toHaveLength(max);
});

test('an endpoint held back by the cap is ejected once another returns and it fails again', () => {
  const t = setup(2, 2);
  t.fail(0, 2);
  t.fail(1, 2);
  expect(t.ejected()).toEqual([true, false]);
  t.advance(BASE_EJECTION_MS);
  expect(t.ejected()).toEqual([false, false]);
  t.fail(1);
  expect(t.ejected()).toEqual([false, true]);
});

test('a single endpoint is never ejected', () => {
  const t = setup(1, 1);
  t.fail(0, 10);
  expect(t.ejected()).toEqual([false]);
  expect(t.events).toEqual([]);
});

test('jitter keeps endpoints ejected together from returning together', () => {
  const t = setup(4, 1, [0.1, 0.9]);
  t.fail(0);
  t.fail(1);
  const [a, b] = [t.endpoints[0]?.ejectedUntil ?? 0, t.endpoints[1]?.ejectedUntil ?? 0];
  expect(b - a).toBe(0.08 * BASE_EJECTION_MS);
  t.advance(a - t.now());
  expect(t.ejected()).toEqual([false, true, false, false]);
  t.advance(b - t.now());
  expect(t.ejected()).toEqual([false, false, false, false]);
});

test('the multiplier decays by one for every 30 s back in service, so an endpoint that failed long ago starts again at 30 s', () => {
  const t = setup(2, 1);
  const ejectAndReturn = () => {
    t.fail(0);
    const ms = t.durations.get(t.endpoints[0] as Endpoint) ?? 0;
    t.advance(ms);
    return ms;
  };
  expect([ejectAndReturn(), ejectAndReturn(), ejectAndReturn()]).toEqual([1, 2, 3].map((k) => k * BASE_EJECTION_MS));
  // Two whole periods back in service (the lookup comes later than the return): two steps down.
  t.advance(2 * BASE_EJECTION_MS + BASE_EJECTION_MS / 2);
  expect(ejectAndReturn()).toBe(2 * BASE_EJECTION_MS);
  t.advance(24 * 60 * 60 * 1000);
  expect(ejectAndReturn()).toBe(BASE_EJECTION_MS);
  expect(t.endpoints[0]?.timesEjected).toBe(5);
});

test('the multiplier stops at the cap, so its decay starts at once: two periods in service shorten the next ejection by one', () => {
  const t = setup(2, 1);
  for (let k = 0; k < 14; k++) {
    t.fail(0);
    t.advance(t.durations.get(t.endpoints[0] as Endpoint) ?? 0);
  }
  expect(t.durations.get(t.endpoints[0] as Endpoint)).toBe(MAX_EJECTION_MS);
  t.advance(BASE_EJECTION_MS);
  t.fail(0);
  expect(t.durations.get(t.endpoints[0] as Endpoint)).toBe(MAX_EJECTION_MS);
  t.advance(MAX_EJECTION_MS + 2 * BASE_EJECTION_MS);
  t.fail(0);
  expect(t.durations.get(t.endpoints[0] as Endpoint)).toBe(MAX_EJECTION_MS - BASE_EJECTION_MS);
});

/** A detector whose clock is the (faked) wall clock, and whose timers are faked too. */
function onFakeTime() {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
  onTestFinished(() => void vi.useRealTimers());
  const events: string[] = [];
  const endpoints = Array.from({ length: 2 }, (_, i) => {
    const pool = new Pool(`http://127.0.0.1:${10_000 + i}`);
    onTestFinished(() => pool.destroy());
    return new Endpoint({ origin: `http://127.0.0.1:${10_000 + i}`, basePath: '' }, pool);
  });
  const detector = new OutlierDetector(endpoints, 1, { now: () => Date.now() }, () => 0, {
    ejected: (endpoint, ms) => events.push(`ejected ${endpoints.indexOf(endpoint)} ${ms}`),
    returned: (endpoint) => events.push(`returned ${endpoints.indexOf(endpoint)}`),
  });
  return { detector, endpoints, events };
}

test('an ejection ends when its time is up and is told then, with no request coming to look', () => {
  const { detector, endpoints, events } = onFakeTime();
  detector.failure(endpoints[0] as Endpoint);
  vi.advanceTimersByTime(BASE_EJECTION_MS - 1);
  expect(events).toEqual([`ejected 0 ${BASE_EJECTION_MS}`]);
  vi.advanceTimersByTime(1);
  expect(events).toEqual([`ejected 0 ${BASE_EJECTION_MS}`, 'returned 0']);
  expect(endpoints[0]?.ejectedUntil).toBe(0);
});

test('a wall clock stepped back an hour during an ejection does not keep the endpoint out an hour longer', () => {
  const { detector, endpoints, events } = onFakeTime();
  detector.failure(endpoints[0] as Endpoint);
  vi.setSystemTime(Date.now() - 3_600_000);
  vi.advanceTimersByTime(BASE_EJECTION_MS);
  expect(events).toEqual([`ejected 0 ${BASE_EJECTION_MS}`, 'returned 0']);
  expect(detector.ejectedCount(Date.now())).toBe(0);
});

test('the ejections of a runtime a reload replaced end unannounced', () => {
  const { detector, endpoints, events } = onFakeTime();
  detector.failure(endpoints[0] as Endpoint);
  detector.retire();
  vi.advanceTimersByTime(BASE_EJECTION_MS);
  expect(events).toEqual([`ejected 0 ${BASE_EJECTION_MS}`]);
});

test('a runtime a reload replaced ejects no one: late failures of its requests serve no decision', () => {
  const { detector, endpoints, events } = onFakeTime();
  detector.retire();
  detector.failure(endpoints[0] as Endpoint);
  expect(events).toEqual([]);
  expect(endpoints[0]?.ejectedUntil).toBe(0);
});
