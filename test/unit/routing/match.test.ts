import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, test } from 'vitest';
import type { MatchSpec } from '../../../src/config/schema.js';
import { compileMatch } from '../../../src/routing/match.js';
import { hostName, RequestView } from '../../../src/routing/request-view.js';

interface Req {
  method?: string;
  /** The request target as sent: path and query are split here, as the handler does. */
  url?: string;
  /** The Host header as sent; reduced by `hostName` as the handler does. */
  host?: string;
  headers?: IncomingHttpHeaders;
}

function matches(spec: MatchSpec, req: Req): boolean {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const view = new RequestView(
    req.method ?? 'GET',
    q === -1 ? url : url.slice(0, q),
    q === -1 ? '' : url.slice(q),
    hostName(req.host ?? 'localhost'),
    req.headers ?? {},
  );
  return compileMatch(spec, (path) => path).every((condition) => condition.test(view));
}

type Case = [string, Req, boolean];

describe.each<[string, MatchSpec, Case[]]>([
  ['path /api (prefix on segment boundaries)', { path: '/api' }, [
    ['the prefix itself', { url: '/api' }, true],
    ['with a trailing slash', { url: '/api/' }, true],
    ['a sub-path', { url: '/api/x/y' }, true],
    ['a longer segment', { url: '/apix' }, false],
    ['a longer segment below', { url: '/apix/y' }, false],
    ['path parameters on the segment (servlet containers read /api;x as /api)', { url: '/api;jsessionid=1' }, true],
    ['a shorter path', { url: '/ap' }, false],
    ['the root', { url: '/' }, false],
    ['another case (paths are case-sensitive)', { url: '/API' }, false],
    ['a query that looks like the path', { url: '/other?next=/api' }, false],
    ['a query after the prefix', { url: '/api?x=1' }, true],
  ]],
  ['path /api/ (trailing slash required)', { path: '/api/' }, [
    ['a sub-path', { url: '/api/x' }, true],
    ['the prefix with slash', { url: '/api/' }, true],
    ['without the slash', { url: '/api' }, false],
  ]],
  ['path /', { path: '/' }, [
    ['the root', { url: '/' }, true],
    ['anything', { url: '/x/y?z' }, true],
  ]],
  ['exact /healthz', { exact: '/healthz' }, [
    ['the path', { url: '/healthz' }, true],
    ['the path with a query (never looked at)', { url: '/healthz?verbose=1' }, true],
    ['with a trailing slash', { url: '/healthz/' }, false],
    ['a sub-path', { url: '/healthz/x' }, false],
    ['a prefix of it', { url: '/health' }, false],
  ]],
  ['regex ^/users/\\d+$', { regex: '^/users/\\d+$' }, [
    ['a numeric id', { url: '/users/42' }, true],
    ['a numeric id with a query (the regex sees the path only)', { url: '/users/42?tab=1' }, true],
    ['a non-numeric id', { url: '/users/me' }, false],
    ['a deeper path', { url: '/users/42/orders' }, false],
  ]],
  ['regex admin (unanchored)', { regex: 'admin' }, [
    ['anywhere in the path', { url: '/x/admin/y' }, true],
    ['only in the query', { url: '/x?admin=1' }, false],
  ]],
  ['methods [GET, POST]', { methods: ['GET', 'POST'] }, [
    ['GET', { method: 'GET' }, true],
    ['POST', { method: 'POST' }, true],
    ['DELETE', { method: 'DELETE' }, false],
    ['HEAD (not implied by GET)', { method: 'HEAD' }, false],
  ]],
  ['host api.example.com', { host: 'api.example.com' }, [
    ['the host', { host: 'api.example.com' }, true],
    ['in another case', { host: 'API.Example.COM' }, true],
    ['with a port (ignored)', { host: 'api.example.com:8443' }, true],
    ['fully qualified (a trailing dot, as nginx reads it)', { host: 'api.example.com.' }, true],
    ['fully qualified, with a port', { host: 'api.example.com.:8443' }, true],
    ['with two trailing dots', { host: 'api.example.com..' }, false],
    ['a subdomain of it', { host: 'x.api.example.com' }, false],
    ['its parent', { host: 'example.com' }, false],
    ['with a longer suffix', { host: 'api.example.com.evil.net' }, false],
  ]],
  ['host *.example.com', { host: '*.example.com' }, [
    ['a subdomain', { host: 'a.example.com' }, true],
    ['a deeper subdomain', { host: 'a.b.example.com' }, true],
    ['a subdomain in upper case with a port', { host: 'WWW.EXAMPLE.COM:80' }, true],
    ['the apex', { host: 'example.com' }, false],
    ['a fully qualified subdomain', { host: 'a.example.com.' }, true],
    ['the fully qualified apex', { host: 'example.com.' }, false],
    ['the apex with a port', { host: 'example.com:80' }, false],
    ['a name ending the same without a dot', { host: 'badexample.com' }, false],
    ['an empty label', { host: '.example.com' }, false],
    ['the suffix elsewhere', { host: 'a.example.com.evil.net' }, false],
  ]],
  ['host *.Example.COM (pattern case)', { host: '*.Example.COM' }, [['a subdomain', { host: 'a.example.com' }, true]]],
  ['host 127.0.0.1', { host: '127.0.0.1' }, [
    ['the address with a port', { host: '127.0.0.1:8080' }, true],
    ['another address', { host: '127.0.0.2' }, false],
  ]],
  ['host ::1', { host: '::1' }, [
    ['the bracketed address with a port', { host: '[::1]:8080' }, true],
    ['another address', { host: '[::2]' }, false],
  ]],
  ['host [::1]', { host: '[::1]' }, [['the bracketed address', { host: '[::1]' }, true]]],
  ['headers X-Beta: "1" (exact value)', { headers: { 'X-Beta': '1' } }, [
    ['the value (header names arrive lower-case)', { headers: { 'x-beta': '1' } }, true],
    ['another value', { headers: { 'x-beta': '2' } }, false],
    ['a longer value', { headers: { 'x-beta': '10' } }, false],
    ['no such header', { headers: {} }, false],
  ]],
  ['headers x-tier: gold (values are case-sensitive)', { headers: { 'x-tier': 'gold' } }, [
    ['gold', { headers: { 'x-tier': 'gold' } }, true],
    ['GOLD', { headers: { 'x-tier': 'GOLD' } }, false],
  ]],
  // Node reads header bytes as latin1: what the client sent as UTF-8 arrives as `zÃ¼rich`.
  ['headers x-region: zürich (non-ASCII, as the file writes it)', { headers: { 'x-region': 'zürich' } }, [
    ['sent as UTF-8', { headers: { 'x-region': Buffer.from('zürich').toString('latin1') } }, true],
    ['another value', { headers: { 'x-region': 'zurich' } }, false],
  ]],
  ['headers x-region: { regex: ^zü }', { headers: { 'x-region': { regex: '^zü' } } }, [
    ['sent as UTF-8', { headers: { 'x-region': Buffer.from('zürich').toString('latin1') } }, true],
  ]],
  ['headers x-client: { regex: ^mobile- }', { headers: { 'x-client': { regex: '^mobile-' } } }, [
    ['a matching value', { headers: { 'x-client': 'mobile-ios' } }, true],
    ['a value that does not match', { headers: { 'x-client': 'desktop' } }, false],
    ['no such header', { headers: {} }, false],
  ]],
  ['headers x-a and x-b (both needed)', { headers: { 'x-a': '1', 'x-b': '2' } }, [
    ['both', { headers: { 'x-a': '1', 'x-b': '2' } }, true],
    ['one', { headers: { 'x-a': '1' } }, false],
  ]],
  ['query view=full', { query: { view: 'full' } }, [
    ['the parameter', { url: '/x?view=full' }, true],
    ['among others', { url: '/x?a=1&view=full&b=2' }, true],
    ['repeated, one of them right', { url: '/x?view=a&view=full' }, true],
    ['percent-encoded', { url: '/x?view=ful%6C' }, true],
    ['another value', { url: '/x?view=partial' }, false],
    ['another name case (query names are case-sensitive)', { url: '/x?View=full' }, false],
    ['no query', { url: '/x' }, false],
  ]],
  ['everything ANDed', { path: '/api', methods: ['POST'], host: '*.example.com', headers: { 'x-a': '1' }, query: { v: '2' } }, [
    ['all hold', { url: '/api/x?v=2', method: 'POST', host: 'a.example.com', headers: { 'x-a': '1' } }, true],
    ['the method fails', { url: '/api/x?v=2', method: 'GET', host: 'a.example.com', headers: { 'x-a': '1' } }, false],
    ['the host fails', { url: '/api/x?v=2', method: 'POST', host: 'example.com', headers: { 'x-a': '1' } }, false],
    ['the query fails', { url: '/api/x', method: 'POST', host: 'a.example.com', headers: { 'x-a': '1' } }, false],
  ]],
  ['an empty match', {}, [['anything', { url: '/whatever', method: 'PATCH' }, true]]],
])('%s', (_name, spec, cases) => {
  test.each(cases)('%s → %s', (_case, req, expected) => {
    expect(matches(spec, req)).toBe(expected);
  });
});

describe('hostName: the Host header as routing sees it', () => {
  test.each([
    ['example.com', 'example.com'],
    ['Example.COM:8080', 'example.com'],
    ['[::1]:80', '[::1]'],
    ['[::1]', '[::1]'],
    ['127.0.0.1:3000', '127.0.0.1'],
    ['', ''],
    [undefined, ''],
  ])('%j → %j', (header, expected) => {
    expect(hostName(header)).toBe(expected);
  });
});
