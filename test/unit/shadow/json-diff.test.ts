import { describe, expect, test } from 'vitest';
import { diffJson, formatPath } from '../../../src/shadow/json-diff.js';
import { JsonIgnore } from '../../../src/shadow/json-path.js';

const none = new JsonIgnore([]);

describe('diffJson', () => {
  test.each<[string, unknown, unknown]>([
    ['equal scalars', 1, 1],
    ['key order', { a: 1, b: { c: [1, { d: null }], e: 'x' } }, { b: { e: 'x', c: [1, { d: null }] }, a: 1 }],
    ['empty containers', { a: [], b: {} }, { b: {}, a: [] }],
  ])('%s: no difference', (_name, a, b) => {
    expect(diffJson(a, b, none)).toEqual({ differences: [], truncated: false });
  });

  test.each<[string, unknown, unknown, unknown[]]>([
    ['a changed value', { a: 'x' }, { a: 'y' }, [{ path: '$.a', kind: 'changed', primary: 'string', shadow: 'string' }]],
    ['a changed type', { a: 1 }, { a: '1' }, [{ path: '$.a', kind: 'changed', primary: 'number', shadow: 'string' }]],
    ['null against an object', { a: null }, { a: {} }, [{ path: '$.a', kind: 'changed', primary: 'null', shadow: 'object' }]],
    ['an array against an object', [], {}, [{ path: '$', kind: 'changed', primary: 'array', shadow: 'object' }]],
    ['a missing key', { a: 1, b: true }, { a: 1 }, [{ path: '$.b', kind: 'missing', primary: 'boolean' }]],
    ['an added key', { a: 1 }, { a: 1, b: [1] }, [{ path: '$.b', kind: 'added', shadow: 'array' }]],
    ['a shorter array', { l: [1, 2, 3] }, { l: [1] }, [{ path: '$.l[1]', kind: 'missing', primary: 'number' }, { path: '$.l[2]', kind: 'missing', primary: 'number' }]],
    ['a longer array', [1], [1, 'x'], [{ path: '$[1]', kind: 'added', shadow: 'string' }]],
    ['array order matters', [1, 2], [2, 1], [{ path: '$[0]', kind: 'changed', primary: 'number', shadow: 'number' }, { path: '$[1]', kind: 'changed', primary: 'number', shadow: 'number' }]],
    ['nested', { a: { b: [{ c: 1 }] } }, { a: { b: [{ c: 2 }] } }, [{ path: '$.a.b[0].c', kind: 'changed', primary: 'number', shadow: 'number' }]],
  ])('%s', (_name, a, b, differences) => {
    expect(diffJson(a, b, none)).toEqual({ differences, truncated: false });
  });

  test.each<[string, string[], unknown, unknown]>([
    ['a changed field', ['meta.generatedAt'], { meta: { generatedAt: 1, n: 1 } }, { meta: { generatedAt: 2, n: 1 } }],
    ['a field on one side only', ['meta.traceId'], { meta: {} }, { meta: { traceId: 'x' } }],
    ['a field in every element', ['items[*].updatedAt'], { items: [{ id: 1, updatedAt: 1 }, { id: 2, updatedAt: 2 }] }, { items: [{ id: 1, updatedAt: 3 }, { id: 2 }] }],
    ['a whole subtree', ['debug'], { debug: { a: [1, 2] } }, { debug: 'off' }],
    ['every value of a map', ['balances.*'], { balances: { u1: 1, u2: 2 } }, { balances: { u1: 5, u3: 2 } }],
  ])('ignoreJsonPaths hides %s', (_name, paths, a, b) => {
    expect(diffJson(a, b, new JsonIgnore(paths))).toEqual({ differences: [], truncated: false });
  });

  test('an ignored path still lets the rest differ', () => {
    const diff = diffJson({ meta: { at: 1 }, id: 1 }, { meta: { at: 2 }, id: 2 }, new JsonIgnore(['meta.at']));
    expect(diff.differences.map((d) => d.path)).toEqual(['$.id']);
  });

  test('stops after the limit and says so', () => {
    const a = Array.from({ length: 30 }, (_, i) => i);
    const diff = diffJson(a, a.map((n) => n + 1), none, 20);
    expect(diff.differences).toHaveLength(20);
    expect(diff.truncated).toBe(true);
    expect(diffJson(a.slice(0, 20), a.slice(0, 20).map((n) => n + 1), none, 20).truncated).toBe(false);
  });
});

describe('formatPath', () => {
  test.each<[(string | number)[], string]>([
    [[], '$'],
    [['items', 3, 'price'], '$.items[3].price'],
    [['updated_at', 'v2', 'sha256'], '$.updated_at.v2.sha256'],
    // Keys that look like data are masked: an e-mail, a token, a uuid, a phone number, dotted keys.
    [['users', 'alice@example.com', 'name'], '$.users.*.name'],
    [['t', 'a3f5c9e1d2b4'], '$.t.*'],
    [['u', '1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed'], '$.u.*'],
    [['p', '5551234567'], '$.p.*'],
    [['a.b'], '$.*'],
    [['x'.repeat(41)], '$.*'],
    // Keys of random letters (base64url session tokens), whatever their digits.
    [['sessions', 'kQzXbVtPwRjLmNsYhGfDaE', 'active'], '$.sessions.*.active'],
    [['s', 'kQzXbVtPwRjL'], '$.s.*'],
    [['s', 'gewrevaefzfqekczvagcwgde'], '$.s.*'],
    // Long names made of words stay, acronyms and snake_case included.
    [['shippingAddressLine', 'created_at_timestamp', 'numberOfItemsInCart'], '$.shippingAddressLine.created_at_timestamp.numberOfItemsInCart'],
    [['lastModifiedByUserID', 'maxHTTPHeaderSize', 'ssl_cert_not_after', 'has_mfa_sms_backup'], '$.lastModifiedByUserID.maxHTTPHeaderSize.ssl_cert_not_after.has_mfa_sms_backup'],
    [['enableHTTPSRedirect', 'totalPriceExclVAT', 'http_x_forwarded_for', 'mfaTOTPEnabledAt'], '$.enableHTTPSRedirect.totalPriceExclVAT.http_x_forwarded_for.mfaTOTPEnabledAt'],
  ])('%j → %s', (path, text) => {
    expect(formatPath(path)).toBe(text);
  });

  test('hidden keys (the caller\'s own id) are written * whatever they look like', () => {
    expect(formatPath(['balances', 'alice', 'total'], new Set(['alice']))).toBe('$.balances.*.total');
    expect(formatPath(['balances', 'bob', 'total'], new Set(['alice']))).toBe('$.balances.bob.total');
  });

  test('is capped at 200 characters', () => {
    const text = formatPath(Array.from({ length: 50 }, () => 'abcdefghij'));
    expect(text).toHaveLength(200);
    expect(text.endsWith('…')).toBe(true);
  });
});
