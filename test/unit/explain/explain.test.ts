import { describe, expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import { formatReport } from '../../../src/explain/command.js';
import { addHeaderLine, explain, type ExplainRequest } from '../../../src/explain/explain.js';
import { bucketOf, inPercent } from '../../../src/routing/bucket.js';

function snapshotOf(yaml: string): Snapshot {
  const loaded = parseRoutes(yaml, 'routes.yaml', {});
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return compile(loaded.config, 'routes.yaml', loaded.hash);
}

const FILE = `version: 1
identity: { header: x-user-id, cookie: uid }
services:
  legacy: { url: http://127.0.0.1:3001 }
  catalog-v2: { urls: [http://127.0.0.1:3101, http://127.0.0.1:3102/base] }
  search-v2: { url: http://127.0.0.1:3301 }
  orders:
    blue: { url: http://127.0.0.1:3201 }
    green: { url: http://127.0.0.1:3202 }
    active: blue
    preview: { header: x-preview, token: sesame }
cohorts:
  staff: { users: [alice, bob] }
  beta: { header: { name: x-beta, value: "1" } }
  early: { percent: 30 }
toggles:
  invoices: { enabled: INVOICES }
  new-search: { cohorts: [staff] }
routes:
  - name: invoices-off
    match: { path: /invoices, toggle: "!invoices" }
    respond: { status: 503, body: paused }
  - name: catalog-staff
    match: { path: /catalog, cohort: staff }
    to: catalog-v2
    rewrite: { stripPrefix: /catalog, addPrefix: /v2/catalog }
  - name: orders
    match: { path: /api/orders, methods: [GET, POST] }
    to: orders
    rewrite: { stripPrefix: /api }
  - name: search
    match: { path: /search }
    to: legacy
    canary: { to: search-v2, weight: 50 }
  - name: shop
    match: { host: shop.example.com }
    to: catalog-v2
  - name: rest
    match: { path: /, methods: [GET, POST] }
    to: legacy
`;

const ON = snapshotOf(FILE.replace('INVOICES', 'true'));
const OFF = snapshotOf(FILE.replace('INVOICES', 'false'));

const run = (request: Partial<ExplainRequest> & { url: string }, snapshot = ON) => explain(snapshot, { method: 'GET', headers: {}, ...request }, () => 'random-id');

const USERS = Array.from({ length: 50 }, (_, i) => `user-${i}`);
const canaryUser = USERS.find((u) => inPercent('search', u, 50)) as string;
const stableUser = USERS.find((u) => !inPercent('search', u, 50)) as string;

describe('the route, and why the earlier ones did not match', () => {
  test.each([
    { name: 'a kill switch whose toggle is off answers itself', snapshot: OFF, request: { url: '/invoices/7' }, route: 'invoices-off', respond: 503, skipped: [] },
    {
      name: 'with the toggle on, the kill switch is passed over for the monolith',
      snapshot: ON,
      request: { url: '/invoices/7' },
      route: 'rest',
      skipped: [
        { route: 'invoices-off', needs: 'toggle invoices off for caller' },
        { route: 'catalog-staff', needs: 'path under /catalog' },
        { route: 'orders', needs: 'path under /api/orders' },
        { route: 'search', needs: 'path under /search' },
        { route: 'shop', needs: 'host shop.example.com' },
      ],
    },
    { name: 'a cohort member reaches the new service', snapshot: ON, request: { url: '/catalog/42', user: 'alice' }, route: 'catalog-staff', service: 'catalog-v2' },
    { name: 'nothing matches a DELETE outside the listed routes', snapshot: ON, request: { url: '/x', method: 'DELETE' }, route: null, respond: 404 },
  ])('$name', ({ snapshot, request, route, respond, skipped, service }) => {
    const report = run(request, snapshot);
    expect(report.route).toBe(route);
    expect(report.respond).toBe(respond);
    if (skipped) expect(report.skipped).toEqual(skipped);
    if (service) expect(report.service).toBe(service);
  });

  test.each(['TRACE', 'CONNECT', 'trace'])('%s is explained as the 405 the proxy answers, before any route', (method) => {
    const report = run({ url: '/', method });
    expect(report).toMatchObject({ route: null, respond: 405, skipped: [] });
    expect(report.notes.join('\n')).toMatch(/refuses/);
  });

  test('a path whose ;parameters, removed, would match another route is explained as the 400 the proxy answers', () => {
    const report = run({ url: '/;x/invoices/export' }, OFF);
    expect(report).toMatchObject({ route: null, respond: 400 });
    expect(report.notes.join('\n')).toMatch(/;parameters/);
    // Parameters that change nothing are no reason to refuse.
    expect(run({ url: '/account;v=2' }, OFF)).toMatchObject({ route: 'rest', forward: 'GET /account;v=2' });
  });

  test('a request target ficus refuses is explained as 400, with the reason', () => {
    const report = run({ url: '/a/%00' });
    expect(report).toMatchObject({ route: null, respond: 400 });
    expect(report.notes.join('\n')).toMatch(/refuses/);
  });

  test.each([
    ['two Host lines, joined', 'localhost, shop.example.com'],
    ['a space inside', 'shop.example.com x'],
  ])('a Host the edge refuses (%s) is explained as its 400', (_how, host) => {
    const report = run({ url: '/anything', headers: { host } });
    expect(report).toMatchObject({ route: null, respond: 400 });
    expect(report.notes.join('\n')).toMatch(/Host/);
  });

  test.each(['FOO', 'M-SEARCH2'])('a method the edge parser does not know (%s) is explained as its 400', (method) => {
    const report = explain(ON, { method, url: '/anything', headers: {} }, () => 'random-id');
    expect(report).toMatchObject({ route: null, respond: 400 });
    expect(report.notes.join('\n')).toMatch(/parser refuses the method/);
  });

  test('a repeated header Node keeps only the first of (user-agent, authorization, …) is read as the proxy reads it', () => {
    const headers = {};
    for (const line of ['user-agent: curl/8', 'user-agent: bot', 'x-beta: 1', 'x-beta: 2', 'host: a.example.com', 'host: b.example.com']) expect(addHeaderLine(headers, line)).toBe(true);
    expect(headers).toEqual({ 'user-agent': 'curl/8', 'x-beta': '1, 2', host: 'a.example.com, b.example.com' });
  });

  test('an absolute URL is matched on its host, as the proxy reads absolute-form targets', () => {
    expect(run({ url: 'http://SHOP.example.com:8080/anything' })).toMatchObject({ host: 'shop.example.com', route: 'shop', service: 'catalog-v2' });
  });
});

describe('who the caller is, and what that decides', () => {
  test.each([
    { how: '-u sets the identity header', request: { url: '/catalog', user: 'alice' }, user: 'alice (header x-user-id)', cohorts: ['staff'] },
    { how: 'the identity cookie is read when no header is sent', request: { url: '/catalog', headers: { cookie: 'theme=dark; uid=bob' } }, user: 'bob (cookie uid)', cohorts: ['staff'] },
    { how: 'a header cohort needs no user', request: { url: '/catalog', headers: { 'x-beta': '1' } }, user: 'anonymous (no header x-user-id or cookie uid)', cohorts: ['beta'] },
  ])('$how', ({ request, user, cohorts }) => {
    const report = run(request);
    expect(report.user).toBe(user);
    for (const cohort of cohorts) expect(report.cohorts).toContain(cohort);
  });

  test('toggles on for the caller are listed as x-ficus-toggles would carry them', () => {
    expect(run({ url: '/', user: 'alice' }).toggles).toEqual(['invoices', 'new-search']);
    expect(run({ url: '/', user: 'carol' }).toggles).toEqual(['invoices']);
    expect(run({ url: '/', user: 'alice' }, OFF).toggles).toEqual(['new-search']);
  });

  test('an anonymous caller is said to be one, and its percentages to be a random draw', () => {
    const report = run({ url: '/search' });
    expect(report.user).toMatch(/^anonymous/);
    expect(report.notes.join('\n')).toMatch(/random draw/);
    expect(report.buckets.find((b) => b.of.startsWith('canary'))?.bucket).toBe(bucketOf('search', 'random-id'));
  });

  test('every percentage shows the bucket, the seed, and whether the user is inside', () => {
    const report = run({ url: '/search', user: 'carol' });
    expect(report.buckets).toEqual([
      { of: 'cohort early', seed: 'early', bucket: bucketOf('early', 'carol'), percent: 30, inside: inPercent('early', 'carol', 30) },
      { of: 'canary search → search-v2', seed: 'search', bucket: bucketOf('search', 'carol'), percent: 50, inside: inPercent('search', 'carol', 50) },
    ]);
    expect(report.cohorts.includes('early')).toBe(inPercent('early', 'carol', 30));
  });

  test('without identity in the file, a user given is ignored and said to be', () => {
    const snapshot = snapshotOf(FILE.replace('identity: { header: x-user-id, cookie: uid }\n', '').replace('INVOICES', 'true'));
    const report = run({ url: '/catalog', user: 'alice' }, snapshot);
    expect(report.route).toBe('rest');
    expect(report.notes.join('\n')).toMatch(/no identity\.header or identity\.cookie/);
  });
});

describe('side, colour, endpoints', () => {
  test.each([
    { user: canaryUser, side: 'canary', service: 'search-v2', endpoints: ['http://127.0.0.1:3301'] },
    { user: stableUser, side: 'stable', service: 'legacy', endpoints: ['http://127.0.0.1:3001'] },
  ])('the canary split by bucket sends $user to the $side side', ({ user, side, service, endpoints }) => {
    expect(run({ url: '/search?q=x', user })).toMatchObject({ route: 'search', side, service, endpoints, forward: 'GET /search?q=x' });
  });

  test.each([
    { name: 'no preview header: the active colour', headers: {}, color: 'blue', preview: false, endpoints: ['http://127.0.0.1:3201'] },
    { name: 'the right token: the inactive colour', headers: { 'x-preview': 'sesame' }, color: 'green', preview: true, endpoints: ['http://127.0.0.1:3202'] },
    { name: 'a wrong token is ignored', headers: { 'x-preview': 'sesame!' }, color: 'blue', preview: false, endpoints: ['http://127.0.0.1:3201'] },
  ])('blue/green, $name', ({ headers, color, preview, endpoints }) => {
    expect(run({ url: '/api/orders/9', headers })).toMatchObject({ route: 'orders', service: 'orders', side: 'stable', color, preview, endpoints, forward: 'GET /orders/9' });
  });

  test('a service with several endpoints lists them all, with their base paths; the rewrite shows in forward', () => {
    const report = run({ url: '/catalog/42', user: 'bob' });
    expect(report).toMatchObject({ endpoints: ['http://127.0.0.1:3101', 'http://127.0.0.1:3102/base'], forward: 'GET /v2/catalog/42' });
    expect(report.notes).toContain('forward: each endpoint puts its own URL path in front (as listed under endpoints)');
  });

  test("forward is the path the upstream receives: the service URL's path in front", () => {
    const snapshot = snapshotOf(FILE.replace('INVOICES', 'true').replace('legacy: { url: http://127.0.0.1:3001 }', 'legacy: { url: http://127.0.0.1:3001/shop }'));
    expect(run({ url: '/account?tab=2' }, snapshot)).toMatchObject({ route: 'rest', endpoints: ['http://127.0.0.1:3001/shop'], forward: 'GET /shop/account?tab=2' });
  });
});

describe('the key: value text', () => {
  test('names the route, service, side and colour on lines of their own', () => {
    const text = formatReport(run({ url: '/api/orders', method: 'post', headers: { 'x-preview': 'sesame' } }));
    const lines = text.trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^[a-z]+: /);
    expect(lines).toEqual(
      expect.arrayContaining(['request: POST /api/orders', 'route: orders', 'service: orders', 'side: stable', 'color: green (preview)', 'endpoints: http://127.0.0.1:3202', 'forward: POST /orders']),
    );
    expect(lines.filter((l) => l.startsWith('skipped: '))).toEqual(['skipped: invoices-off (needs path under /invoices)', 'skipped: catalog-staff (needs path under /catalog)']);
  });

  test('a respond route shows its status and no service, side or colour', () => {
    const text = formatReport(run({ url: '/invoices' }, OFF));
    expect(text).toContain('route: invoices-off\nrespond: 503\n');
    expect(text).not.toMatch(/^(service|side|color):/m);
  });

  test('no route: route none, and ficus answers 404 itself', () => {
    expect(formatReport(run({ url: '/x', method: 'DELETE' }))).toContain('route: none\nrespond: 404 (from ficus itself)\n');
  });
});
