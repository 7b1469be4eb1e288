import { expect, test } from 'vitest';
import { MismatchSampler } from '../../../src/shadow/mismatch-log.js';

test('one line per route per interval, each telling how many were left out before it', () => {
  let now = 1_000;
  const sampler = new MismatchSampler({ now: () => now }, 10_000);
  expect(sampler.take('a')).toBe(0);
  expect(sampler.take('a')).toBeUndefined();
  expect(sampler.take('b')).toBe(0);
  now += 9_999;
  expect(sampler.take('a')).toBeUndefined();
  now += 1;
  expect(sampler.take('a')).toBe(2);
  expect(sampler.take('a')).toBeUndefined();
  now += 60_000;
  expect(sampler.take('a')).toBe(1);
  expect(sampler.take('b')).toBe(0);
});

test('a route a reload removed is forgotten: kept routes keep their pacing', () => {
  const now = 1_000;
  const sampler = new MismatchSampler({ now: () => now }, 10_000);
  expect(sampler.take('old')).toBe(0);
  expect(sampler.take('kept')).toBe(0);
  sampler.retain(new Set(['kept']));
  // Forgotten: a route of that name later starts afresh, its first mismatch logged at once.
  expect(sampler.take('old')).toBe(0);
  expect(sampler.take('kept')).toBeUndefined();
});

test('a wall clock stepped back does not silence a route for the length of the step', () => {
  let now = 1_000_000_000;
  const sampler = new MismatchSampler({ now: () => now }, 10_000);
  expect(sampler.take('a')).toBe(0);
  now -= 3_600_000;
  expect(sampler.take('a')).toBe(0);
});
