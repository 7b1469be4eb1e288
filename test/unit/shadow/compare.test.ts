import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import type { ShadowDef } from '../../../src/config/snapshot.js';
import { isJsonMediaType } from '../../../src/shadow/body-capture.js';
import { captureBody, compareAnswers, type Answer } from '../../../src/shadow/compare.js';

function def(over: Partial<ShadowDef> = {}): ShadowDef {
  return { service: 'fresh', percent: 100, compare: true, methods: new Set(['GET']), ignoreHeaders: new Set(), ignoreJsonPaths: [], maxBodyBytes: 1024, timeoutMs: 1_000, maxConcurrent: 1, ...over };
}

/** An answer as the tap sees it: raw header buffers, the body in chunks of 7 bytes. */
function answer(headers: string[], body: string | Buffer, d: ShadowDef, status = 200): Answer {
  const raw = headers.map((h) => Buffer.from(h, 'latin1'));
  const capture = captureBody(raw, d);
  const bytes = Buffer.from(body);
  for (let i = 0; i < bytes.length; i += 7) capture.add(bytes.subarray(i, i + 7));
  return { status, rawHeaders: raw, body: capture };
}

const JSON_TYPE = ['content-type', 'application/json'];

function verdict(primary: [string[], string | Buffer, number?], shadow: [string[], string | Buffer, number?], over: Partial<ShadowDef> = {}) {
  const d = def(over);
  return compareAnswers(answer(primary[0], primary[1], d, primary[2]), answer(shadow[0], shadow[1], d, shadow[2]), d);
}

describe('headers', () => {
  test.each<[string, string[], string[], Partial<ShadowDef>, string[]]>([
    ['equal', ['x-a', '1'], ['X-A', '1'], {}, []],
    ['a value differs', ['x-a', '1'], ['x-a', '2'], {}, ['x-a']],
    ['one side only, either way', ['x-a', '1'], ['x-b', '1'], {}, ['x-a', 'x-b']],
    ['repeated fields are joined in order', ['vary', 'a', 'vary', 'b'], ['vary', 'a, b'], {}, []],
    ['repeated fields in another order differ', ['vary', 'a', 'vary', 'b'], ['vary', 'b, a'], {}, ['vary']],
    ['hop-by-hop fields are not compared', ['keep-alive', 'timeout=5', 'trailer', 'x', 'upgrade', 'h2c'], ['proxy-authenticate', 'Basic'], {}, []],
    ['fields named by Connection are hop-by-hop', ['connection', 'x-hop', 'x-hop', '1'], [], {}, []],
    ['built-in ignored fields', ['date', 'a', 'server', 'a', 'etag', 'a', 'age', '1', 'via', 'a', 'x-request-id', 'a', 'last-modified', 'a', 'expires', 'a', 'set-cookie', 'a', 'x-powered-by', 'a', 'x-ficus-toggles', 'a', 'content-length', '0'],
      ['date', 'b', 'server', 'b', 'etag', 'b', 'age', '2', 'via', 'b', 'x-request-id', 'b', 'last-modified', 'b', 'expires', 'b', 'set-cookie', 'b', 'x-powered-by', 'b', 'transfer-encoding', 'chunked'], {}, []],
    ['ignoreHeaders (lower-case, as compiled)', ['x-a', '1', 'x-b', '1'], ['x-a', '2', 'x-b', '2'], { ignoreHeaders: new Set(['x-a']) }, ['x-b']],
  ])('%s', (_name, a, b, over, names) => {
    const result = verdict([a, ''], [b, ''], over);
    if (names.length === 0) expect(result).toEqual({ result: 'match' });
    else expect(result).toEqual({ result: 'mismatch', difference: { status: { primary: 200, shadow: 200 }, headers: names } });
  });
});

describe('status', () => {
  test('another status is a mismatch even with equal bodies', () => {
    expect(verdict([[], 'x', 200], [[], 'x', 404])).toEqual({ result: 'mismatch', difference: { status: { primary: 200, shadow: 404 }, headers: [] } });
  });
});

describe('bodies', () => {
  const order = JSON.stringify({ id: 1, lines: [{ sku: 'a' }] });
  const reordered = JSON.stringify({ lines: [{ sku: 'a' }], id: 1 });

  test.each<[string, [string[], string | Buffer], [string[], string | Buffer], 'match' | 'mismatch' | 'skipped']>([
    ['JSON in another key order', [JSON_TYPE, order], [JSON_TYPE, reordered], 'match'],
    ['JSON +json types with parameters', [['content-type', 'application/problem+json; charset=utf-8'], order], [['content-type', 'application/problem+json; charset=utf-8'], reordered], 'match'],
    ['the same JSON bytes sent as text are compared byte for byte', [['content-type', 'text/plain'], order], [['content-type', 'text/plain'], reordered], 'mismatch'],
    ['gzip-encoded JSON on both sides, compressed differently', [[...JSON_TYPE, 'content-encoding', 'gzip'], gzipSync(order, { level: 1 })], [[...JSON_TYPE, 'content-encoding', 'gzip'], gzipSync(reordered, { level: 9 })], 'match'],
    ['deflate-encoded JSON', [[...JSON_TYPE, 'content-encoding', 'deflate'], deflateSync(order)], [[...JSON_TYPE, 'content-encoding', 'deflate'], deflateSync(reordered)], 'match'],
    ['br-encoded JSON', [[...JSON_TYPE, 'content-encoding', 'br'], brotliCompressSync(order)], [[...JSON_TYPE, 'content-encoding', 'br'], brotliCompressSync(reordered)], 'match'],
    ['JSON that inflates past maxBodyBytes', [[...JSON_TYPE, 'content-encoding', 'gzip'], gzipSync(JSON.stringify({ a: 'x'.repeat(5000) }))], [[...JSON_TYPE, 'content-encoding', 'gzip'], gzipSync(JSON.stringify({ a: 'x'.repeat(5000) }))], 'skipped'],
    ['invalid JSON compared as bytes: equal', [JSON_TYPE, '{"a":'], [JSON_TYPE, '{"a":'], 'match'],
    ['invalid JSON compared as bytes: different', [JSON_TYPE, '{"a":'], [JSON_TYPE, '{"b":'], 'mismatch'],
    ['empty bodies', [[], ''], [[], ''], 'match'],
    ['a primary body over maxBodyBytes', [[], 'x'.repeat(1025)], [[], 'x'], 'skipped'],
    ['a shadow body over maxBodyBytes', [JSON_TYPE, '{}'], [JSON_TYPE, `"${'x'.repeat(1024)}"`], 'skipped'],
    ['a body exactly maxBodyBytes long', [[], 'x'.repeat(1024)], [[], 'x'.repeat(1024)], 'match'],
  ])('%s', (_name, primary, shadow, result) => {
    expect(verdict(primary, shadow).result).toBe(result);
  });

  test('JSON differences name their paths; ignoreJsonPaths are left out', () => {
    const a = JSON.stringify({ id: 1, meta: { at: 1 }, lines: [{ at: 1, sku: 'a' }] });
    const b = JSON.stringify({ id: 2, meta: { at: 2 }, lines: [{ at: 2, sku: 'a' }] });
    expect(verdict([JSON_TYPE, a], [JSON_TYPE, b], { ignoreJsonPaths: ['meta.at', 'lines[*].at'] })).toEqual({
      result: 'mismatch',
      difference: { status: { primary: 200, shadow: 200 }, headers: [], body: { kind: 'json', truncated: false, differences: [{ path: '$.id', kind: 'changed', primary: 'number', shadow: 'number' }] } },
    });
  });

  test('integers past 2^53 (64-bit ids) are compared as written, not as the doubles they round to', () => {
    const body = (id: string, extra = '') => `{"orderId":${id},"note":"id 9007199254740993 \\" ${extra}","total":12.5}`;
    expect(verdict([JSON_TYPE, body('9007199254740993')], [JSON_TYPE, body('9007199254740992')])).toMatchObject({
      result: 'mismatch',
      difference: { body: { kind: 'json', differences: [{ path: '$.orderId', kind: 'changed', primary: 'number', shadow: 'number' }] } },
    });
    expect(verdict([JSON_TYPE, body('9007199254740993')], [JSON_TYPE, body('9007199254740993')]).result).toBe('match');
    expect(verdict([JSON_TYPE, body('-12345678901234567890.5e3')], [JSON_TYPE, body('-12345678901234567890.5e3')]).result).toBe('match');
    // A long number against a string of the same digits is still a change of type.
    expect(verdict([JSON_TYPE, body('9007199254740993')], [JSON_TYPE, body('"9007199254740993"')])).toMatchObject({
      difference: { body: { differences: [{ path: '$.orderId', primary: 'number', shadow: 'string' }] } },
    });
  });

  test('compressed text that inflates past maxBodyBytes is skipped, not compared as its compressed bytes', () => {
    const page = `<p>${'x'.repeat(5_000)}</p>`;
    const html = ['content-type', 'text/html', 'content-encoding', 'gzip'];
    expect(verdict([html, gzipSync(page, { level: 1 })], [html, gzipSync(page, { level: 9 })]).result).toBe('skipped');
  });

  test('other bodies differ by size and keyed digest, equal bodies digest equally', () => {
    const result = verdict([[], 'abc'], [[], 'abcd']);
    expect(result).toMatchObject({ result: 'mismatch', difference: { body: { kind: 'bytes', primary: { bytes: 3 }, shadow: { bytes: 4 } } } });
    const d = def();
    expect(answer([], 'same', d).body.digest()).toBe(answer([], 'same', d).body.digest());
  });

  test('JSON nested too deeply to walk is still compared, by its bytes', () => {
    const deep = (leaf: number) => `${'['.repeat(20_000)}${leaf}${']'.repeat(20_000)}`;
    const big = def({ maxBodyBytes: 100_000 });
    expect(compareAnswers(answer(JSON_TYPE, deep(1), big), answer(JSON_TYPE, deep(1), big), big)).toEqual({ result: 'match' });
    expect(compareAnswers(answer(JSON_TYPE, deep(1), big), answer(JSON_TYPE, deep(2), big), big)).toMatchObject({ result: 'mismatch', difference: { body: { kind: 'bytes' } } });
  });
});

test.each([
  ['application/json', true],
  ['Application/JSON; charset=utf-8', true],
  ['application/vnd.api+json', true],
  ['application/jsonx', false],
  ['text/json+html', false],
  ['text/plain', false],
  ['', false],
])('%j is JSON: %s', (type, json) => {
  expect(isJsonMediaType(type)).toBe(json);
});
