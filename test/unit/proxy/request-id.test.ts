import { expect, test } from 'vitest';
import { RequestIds } from '../../../src/proxy/request-id.js';

/** RFC 9562: version 8 (vendor-specific layout), variant 10xx. */
const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('generated ids are RFC 9562 version 8 UUIDs, all different', () => {
  const ids = new RequestIds();
  const seen = new Set<string>();
  for (let i = 0; i < 100_000; i++) {
    const id = ids.next();
    if (i % 997 === 0) expect(id).toMatch(UUID_V8);
    seen.add(id);
  }
  expect(seen.size).toBe(100_000);
});

test('two sequences (two processes, or a restart) share no id: each draws its own random part', () => {
  const a = new RequestIds();
  const b = new RequestIds();
  const first = new Set(Array.from({ length: 1_000 }, () => a.next()));
  for (let i = 0; i < 1_000; i++) expect(first.has(b.next())).toBe(false);
  expect(a.next().slice(0, 24)).not.toBe(b.next().slice(0, 24));
});

test('the count carries from its low 32 bits into the high 16, and after 2^48 ids a new random part begins', () => {
  const carry = new RequestIds(2 ** 32 - 2);
  expect(carry.next().slice(24)).toBe('0000ffffffff');
  expect(carry.next().slice(24)).toBe('000100000000');
  const wrap = new RequestIds(2 ** 48 - 2);
  const last = wrap.next();
  expect(last.slice(24)).toBe('ffffffffffff');
  const after = wrap.next();
  expect(after).toMatch(UUID_V8);
  expect(after.slice(24)).toBe('000000000001');
  expect(after.slice(0, 24)).not.toBe(last.slice(0, 24));
});
