import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { parseRoutes } from '../../../src/config/load.js';
import { normalizeTarget, type Target } from '../../../src/routing/normalize.js';
import { RequestView } from '../../../src/routing/request-view.js';
import { firstMatch } from '../../../src/routing/route.js';

/**
 * SPEC §1.2: the matched path is the forwarded path, and a request can never reach a route it
 * did not match. Modelled here against a naive upstream that decodes every %XX once, treats
 * "\" as "/", drops Tomcat path parameters from dot segments, then resolves dot segments and
 * merges slashes: whatever it reads the forwarded path as must select the proxy's route.
 */

const yaml = `version: 1
services:
  a: { url: http://127.0.0.1:1 }
routes:
  - { name: api-admin, match: { path: /api/admin }, respond: { status: 403 } }
  - { name: admin, match: { path: /admin }, respond: { status: 403 } }
  - { name: public, match: { path: /public }, to: a }
  - { name: api, match: { path: /api }, to: a }
  - { name: rest, match: { path: / }, respond: { status: 404 } }
`;
const loaded = parseRoutes(yaml, 'routes.yaml', {});
if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
const routes = compile(loaded.config, 'routes.yaml', loaded.hash).routes;

function routeOf(path: string): string | undefined {
  return firstMatch(routes, new RequestView('GET', path, '', 'localhost', {}))?.name;
}

function naiveUpstream(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const out: string[] = [];
  for (const segment of decoded.replace(/\\/g, '/').split('/')) {
    const bare = segment.replace(/^(\.\.?);.*$/, '$1');
    if (bare === '..') out.pop();
    else if (bare !== '.' && bare !== '') out.push(bare);
  }
  return `/${out.join('/')}`;
}

/** Separators, dots and names in every spelling, often; what ficus refuses outright, rarely. */
const token = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('/', '//', '..', '.', '%2e', '%2E', '%2e%2e', '%2E%2e', '.%2e', '%2f', '%2F') },
  { weight: 6, arbitrary: fc.constantFrom('admin', 'public', 'api', 'Admin', '%41dmin', '%61dmin', '%41', 'x', '~') },
  { weight: 2, arbitrary: fc.constantFrom(';', '%3b', '%3B', '%25', '%252e', '%252f', '%255c', '?') },
  { weight: 1, arbitrary: fc.constantFrom('..;', '%5c', '%5C', '\\', '%00', '%zz', '%') },
);
const rawTarget = fc
  .tuple(fc.constantFrom('', 'http://h'), fc.array(token, { maxLength: 12 }))
  .map(([origin, tokens]) => `${origin}/${tokens.join('')}`);

/** (a) Normalizing twice changes nothing: the forwarded path is a fixed point. */
function fixedPoint(normalize: (raw: string) => Target) {
  return fc.property(rawTarget, (raw) => {
    const target = normalize(raw);
    if (!target.ok) return;
    expect(normalize(target.path + target.query)).toEqual({ ok: true, path: target.path, query: target.query, host: undefined });
  });
}

/** (b) The upstream, reading the forwarded path its own way, lands on the route the proxy matched. */
function sameRoute(normalize: (raw: string) => Target) {
  return fc.property(rawTarget, (raw) => {
    const target = normalize(raw);
    if (!target.ok) return;
    expect(routeOf(naiveUpstream(target.path))).toBe(routeOf(target.path));
  });
}

/** Literal dot segments resolved and slashes merged, escapes left as sent. */
function resolveLiterally(path: string): string {
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '..') out.pop();
    else if (segment !== '.' && segment !== '') out.push(segment);
  }
  return `/${out.join('/')}`;
}

describe('the matched path is the forwarded path', () => {
  test('holds for generated tricky targets', () => {
    fc.assert(fixedPoint(normalizeTarget), { numRuns: 5000 });
    fc.assert(sameRoute(normalizeTarget), { numRuns: 5000 });
  });

  test.each(['/public/..%2fadmin', '/public/%2E%2e/admin', '//admin', '/public/%252e%252e/admin', '/api/%2e%2e/api%2fadmin'])('holds for %s', (raw) => {
    fc.assert(sameRoute(normalizeTarget), { examples: [[raw]], numRuns: 1 });
  });

  // The property is worth something only if it catches a proxy that gets this wrong.
  test.each([
    ['matched and forwarded the raw path', (raw: string): Target => ({ ok: true, path: raw.replace(/^http:\/\/h/, '').split('?')[0] ?? '/', query: '', host: undefined })],
    ['resolved dot segments without decoding first', (raw: string): Target => {
      const target = normalizeTarget(raw);
      return target.ok ? { ...target, path: resolveLiterally(raw.replace(/^http:\/\/h/, '').split('?')[0] ?? '/') } : target;
    }],
  ])('fails for a proxy that %s', (_name, broken) => {
    const details = fc.check(sameRoute(broken), { numRuns: 5000, seed: 1 });
    expect(details.failed).toBe(true);
  });
});
