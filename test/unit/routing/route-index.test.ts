import fc from 'fast-check';
import { expect, test } from 'vitest';
import type { RouteDef } from '../../../src/config/snapshot.js';
import { compileMatch, firstSegment, regexSegment } from '../../../src/routing/match.js';
import { normalizePath } from '../../../src/routing/normalize.js';
import { RequestView } from '../../../src/routing/request-view.js';
import { firstMatch, RouteIndex } from '../../../src/routing/route.js';

const normalize = (path: string): string => {
  const out = normalizePath(path);
  if (typeof out !== 'string') throw new Error(out.reason);
  return out;
};

const piece = fc.constantFrom('a', 'ab', 'api', 'v2', 'b;x', 'a%3Bx', 'a;', '', 'x.y');
const path = fc.array(piece, { minLength: 0, maxLength: 3 }).map((parts) => `/${parts.join('/')}`);
const match = fc.record(
  {
    path: path,
    exact: path,
    regex: fc.constantFrom('^/a', 'b$', '^/(api|ab)/', '^/a/', '^/a$', '^/ab/', '^/a\\/', '^/a?/', '^/a/|^/b', '^/b;x$', '^/x.y$', '^/x\\.y$', '^/api/v2$', '^/a/(b|c)', '^/a/(b)|^/b', '^/a/[(]|^/b', '^/a/[|]', '^/a/?', '^/ab/?', '^/a\\/?', '^/a/*b', '^/a/{0,1}b', '^/a/?$'),
    methods: fc.constantFrom(['GET'], ['POST'], ['GET', 'POST']),
  },
  { requiredKeys: [] },
);

function routesOf(specs: Record<string, unknown>[]): RouteDef[] {
  return specs.map((spec, index) => ({
    name: `r${index}`,
    index,
    conditions: compileMatch(spec, normalize),
    action: { kind: 'respond', status: 200, body: '', headers: {} },
    fingerprint: String(index),
  }));
}

test.each([
  ['/api/v2/users', 'api'],
  ['/api', 'api'],
  ['/', ''],
  ['/admin;jsessionid=1/x', 'admin'],
  ['/admin%3Bx', 'admin'],
  ['/admin%3bx', 'admin'],
  ['/a%3/b', 'a%3'],
])('firstSegment(%s) is %j', (input, segment) => {
  expect(firstSegment(input)).toBe(segment);
});

test.each([
  ['^/orders/\\d+$', 'orders'],
  ['^/orders$', 'orders'],
  ['^/orders\\/', 'orders'],
  ['^/a-b~c_d/x', 'a-b~c_d'],
  ['^/item\\.php$', 'item.php'],
  ['^/users/[0-9]+/avatar(\\.png|\\.jpg)?$', 'users'],
  ['^/users/[|]/x', 'users'],
  ['^/users/\\|', 'users'],
  // Not pinned: the word may go on, or the regex may match under any segment.
  ['^/orders', undefined],
  ['^/orders?/', undefined],
  ['^/or.ders/', undefined],
  ['^/(orders)/', undefined],
  ['^/orders/|^/admin/', undefined],
  ['^/orders/(a)|b', undefined],
  ['^/orders/[(]|b', undefined],
  ['^/item\\.?php$', undefined],
  ['/orders/', undefined],
  // The slash may be absent: `/ordersX` matches too.
  ['^/orders/?', undefined],
  ['^/orders\\/?', undefined],
  ['^/orders/*x', undefined],
  ['^/orders/{0,1}x', undefined],
])('a path regex %s pins the first segment %j', (source, segment) => {
  expect(regexSegment(source)).toBe(segment);
});

test('matching over the index picks the same route as matching over every route', () => {
  fc.assert(
    fc.property(fc.array(match, { maxLength: 12 }), path, fc.constantFrom('GET', 'POST'), (specs, requestPath, method) => {
      const routes = routesOf(specs);
      const view = new RequestView(method, normalize(requestPath), '', 'example.com', {});
      const index = new RouteIndex(routes);
      expect(firstMatch(index.candidates(view.path), view)?.name).toBe(firstMatch(routes, view)?.name);
      expect(index.firstMatch(view)?.name).toBe(firstMatch(routes, view)?.name);
    }),
    { numRuns: 2000 },
  );
});

