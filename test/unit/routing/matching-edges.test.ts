import { expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import { explain } from '../../../src/explain/explain.js';
import { decide } from '../../../src/routing/decide.js';
import { RequestView } from '../../../src/routing/request-view.js';
import { identify } from '../../../src/routing/identity.js';
import { sameRouteWithoutParameters } from '../../../src/routing/route.js';

function snapshotOf(yaml: string): Snapshot {
  const loaded = parseRoutes(yaml, 'routes.yaml', {});
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return compile(loaded.config, 'routes.yaml', loaded.hash);
}

const FILE = `version: 1
services: { legacy: { url: http://127.0.0.1:3001 } }
routes:
  - { name: admin-block, match: { regex: "^/admin/?" }, respond: { status: 403 } }
  - { name: secret-block, match: { exact: /secret }, respond: { status: 403 } }
  - { name: admin-host, match: { headers: { host: admin.example.com } }, respond: { status: 403 } }
  - { name: https-only, match: { headers: { x-forwarded-proto: https } }, respond: { status: 204 } }
  - { name: rest, match: { path: / }, to: legacy }
`;

test.each(['/administrator', '/admin-panel', '/admin'])('the index and explain agree on %s (a regex whose slash is optional)', (path) => {
  const snapshot = snapshotOf(FILE);
  const view = new RequestView('GET', path, '', 'example.com', {});
  expect(decide(snapshot, view).route?.name).toBe('admin-block');
  expect(explain(snapshot, { method: 'GET', url: path }).route).toBe('admin-block');
});

test.each(['/secret%3Bjsessionid=1', '/%3B/secret'])('%s, read without its encoded parameters, picks another route: refused', (path) => {
  const snapshot = snapshotOf(FILE);
  const view = new RequestView('GET', path, '', 'example.com', {});
  expect(sameRouteWithoutParameters(snapshot.routeIndex, view, decide(snapshot, view).route)).toBe(false);
});

test('a headers.host condition reads the absolute-form authority that replaces Host', () => {
  const report = explain(snapshotOf(FILE), { method: 'GET', url: 'http://admin.example.com/x', headers: { host: 'www.example.com' } });
  expect(report.route).toBe('admin-host');
});

test('explain ignores X-Forwarded-* as the proxy does when no peer is trusted', () => {
  const report = explain(snapshotOf(FILE), { method: 'GET', url: '/x', headers: { 'x-forwarded-proto': 'https' } });
  expect(report.route).toBe('rest');
  expect(report.notes.join('\n')).toMatch(/x-forwarded-proto: ignored/);
});

test('a header condition never finds what Object gives every object (constructor, toString)', () => {
  const snapshot = snapshotOf(`version: 1
services: { legacy: { url: http://127.0.0.1:3001 } }
routes:
  - { name: odd, match: { headers: { constructor: { regex: "." } } }, respond: { status: 418 } }
  - { name: rest, match: { path: / }, to: legacy }
`);
  expect(decide(snapshot, new RequestView('GET', '/x', '', 'example.com', {})).route?.name).toBe('rest');
});

test('an identity header named like a property every object has reads only what the client sent', () => {
  const caller = identify({ header: 'constructor', cookie: undefined, anonymousCookie: undefined }, {}, false, () => 'fresh');
  expect(caller).toMatchObject({ id: 'fresh', known: false });
});
