import { describe, expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import { RequestView } from '../../../src/routing/request-view.js';
import { firstMatch, traceMatch } from '../../../src/routing/route.js';

function snapshotOf(routes: string): Snapshot {
  const yaml = `version: 1\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\n  v2: { url: http://127.0.0.1:3002 }\nroutes:\n${routes}`;
  const loaded = parseRoutes(yaml, 'routes.yaml', {});
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => i.message).join('\n'));
  return compile(loaded.config, 'routes.yaml', loaded.hash);
}

const view = (method: string, path: string, headers: Record<string, string> = {}) => new RequestView(method, path, '', 'localhost', headers);

// A general route written first wins over a specific one written later: order is the operator's.
const snapshot = snapshotOf(`
  - { name: health, match: { exact: /healthz }, respond: { status: 200 } }
  - { name: orders-write, match: { path: /orders, methods: [POST, PUT] }, to: v2 }
  - { name: beta, match: { path: /orders, headers: { x-beta: "1" } }, to: v2 }
  - { name: orders, match: { path: /orders }, to: legacy }
  - { name: orders-shadowed, match: { path: /orders/special }, to: v2 }
  - { name: api, match: { path: /api }, to: v2 }
`);

describe('first match in file order', () => {
  test.each([
    ['GET', '/healthz', {}, 'health'],
    ['POST', '/orders', {}, 'orders-write'],
    ['POST', '/orders', { 'x-beta': '1' }, 'orders-write'],
    ['GET', '/orders', { 'x-beta': '1' }, 'beta'],
    ['GET', '/orders/1', {}, 'orders'],
    ['GET', '/orders/special', {}, 'orders'],
    ['GET', '/api/v1', {}, 'api'],
    ['GET', '/healthz/x', {}, undefined],
    ['GET', '/', {}, undefined],
    ['GET', '/apiary', {}, undefined],
  ])('%s %s %j → %s', (method, path, headers, expected) => {
    expect(firstMatch(snapshot.routes, view(method, path, headers))?.name).toBe(expected);
  });
});

describe('traceMatch: the same decision, with why earlier routes were passed over', () => {
  test('names the first failing condition of each skipped route', () => {
    const trace = traceMatch(snapshot.routes, view('GET', '/orders/1'));
    expect(trace.route?.name).toBe('orders');
    expect(trace.skipped).toEqual([
      { route: 'health', failed: 'path is /healthz' },
      { route: 'orders-write', failed: 'method in POST,PUT' },
      { route: 'beta', failed: 'header x-beta is "1"' },
    ]);
  });

  test('agrees with firstMatch when nothing matches', () => {
    const trace = traceMatch(snapshot.routes, view('GET', '/nowhere'));
    expect(trace.route).toBeUndefined();
    expect(trace.skipped.map((s) => s.route)).toEqual(snapshot.routes.map((r) => r.name));
  });
});
