import { describe, expect, test } from 'vitest';
import { normalizePath, normalizeTarget } from '../../../src/routing/normalize.js';

/**
 * Request targets an attacker sends to reach a route they did not match (path traversal,
 * encoded separators, parser differentials between the proxy and an upstream). Each either
 * normalizes to the path an upstream would also read, or is refused with 400.
 */
describe('attack targets: normalized to what an upstream would read', () => {
  test.each([
    ['/public/..%2fadmin', '/admin'],
    ['/public/..%2Fadmin', '/admin'],
    ['/public%2f..%2fadmin', '/admin'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/public/%2E%2e/admin', '/admin'],
    ['/public/.%2e/admin', '/admin'],
    ['/public/%2e./admin', '/admin'],
    ['/public/./../admin', '/admin'],
    ['//admin', '/admin'],
    ['///admin//x', '/admin/x'],
    ['/public/../../../admin', '/admin'],
    ['/../../etc/passwd', '/etc/passwd'],
    ['/api/..', '/'],
    ['/..', '/'],
    ['/a/.', '/a/'],
    ['/a/./b/', '/a/b/'],
    // One decode pass only: a double-encoded dot stays data, so no upstream decodes it into a dot segment.
    ['/public/%252e%252e/admin', '/public/%252e%252e/admin'],
    ['/public/..%252fadmin', '/public/..%252fadmin'],
    ['/%41%42c', '/ABc'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/a%3bb', '/a%3Bb'],
    ['/a;b=c/d', '/a;b=c/d'],
    ['/plain/path-with_chars~!$&\'()*+,=:@', '/plain/path-with_chars~!$&\'()*+,=:@'],
  ])('%s → %s', (raw, expected) => {
    expect(normalizeTarget(raw)).toEqual({ ok: true, path: expected, query: '', host: undefined });
  });
});

describe('attack targets: refused', () => {
  test.each([
    ['/public/..;/admin', 'dot segment with path parameters'],
    ['/public/.;/admin', 'dot segment with path parameters'],
    ['/public/..;jsessionid=1/admin', 'dot segment with path parameters'],
    ['/public/%2e%2e;/admin', 'dot segment with path parameters'],
    ['/public/..%3b/admin', 'dot segment with path parameters'],
    ['/public/%2e%2e%3B/admin', 'dot segment with path parameters'],
    ['/public/%5c..%5cadmin', 'encoded backslash in path'],
    ['/public/..%5Cadmin', 'encoded backslash in path'],
    ['/a\\b', 'invalid character in path'],
    ['/public\\..\\admin', 'invalid character in path'],
    ['/a%00b', 'encoded NUL in path'],
    ['/a%zz', 'malformed percent-encoding in path'],
    ['/a%2', 'malformed percent-encoding in path'],
    ['/a%', 'malformed percent-encoding in path'],
    ['/a b', 'invalid character in path'],
    ['/a#frag', 'invalid character in path'],
    ['/a?b#c', 'fragment in request target'],
    ['/a"b', 'invalid character in path'],
    ['*', 'request target must be a path or an absolute http URL'],
    ['', 'request target must be a path or an absolute http URL'],
    ['admin', 'request target must be a path or an absolute http URL'],
    ['ftp://host/x', 'request target must be a path or an absolute http URL'],
    ['http://user@host/x', 'absolute-form target with userinfo or without a host'],
    ['http:///x', 'absolute-form target with userinfo or without a host'],
  ])('%j is refused: %s', (raw, reason) => {
    expect(normalizeTarget(raw)).toEqual({ ok: false, reason });
  });
});

describe('query and absolute-form', () => {
  test.each([
    ['/a?x=../y&z=%2e%2e', { path: '/a', query: '?x=../y&z=%2e%2e', host: undefined }],
    ['/a/../b?', { path: '/b', query: '?', host: undefined }],
    ['http://host/x', { path: '/x', query: '', host: 'host' }],
    ['HTTP://Example.com:8080/a/../b?q=1', { path: '/b', query: '?q=1', host: 'Example.com:8080' }],
    ['https://host', { path: '/', query: '', host: 'host' }],
    ['http://host?x=1', { path: '/', query: '?x=1', host: 'host' }],
    ['http://host/public/..%2fadmin', { path: '/admin', query: '', host: 'host' }],
  ])('%s', (raw, expected) => {
    expect(normalizeTarget(raw)).toEqual({ ok: true, ...expected });
  });
});

describe('normalizePath (also used to check paths written in routes.yaml)', () => {
  test.each([
    ['/', '/'],
    ['/api', '/api'],
    ['/api/', '/api/'],
    ['/api/../v1', '/v1'],
    ['/a%2Fb', '/a/b'],
  ])('%s → %s', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });

  test('an invalid path gives a reason', () => {
    expect(normalizePath('/a%zz')).toEqual({ ok: false, reason: 'malformed percent-encoding in path' });
  });
});
