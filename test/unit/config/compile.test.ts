import { describe, expect, test } from 'vitest';
import { compile, compileRewrite } from '../../../src/config/compile.js';
import { parseDuration } from '../../../src/config/duration.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { Snapshot } from '../../../src/config/snapshot.js';

function snapshotOf(yaml: string): Snapshot {
  const loaded = parseRoutes(`version: 1\n${yaml}`, 'routes.yaml', {});
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`).join('\n'));
  return compile(loaded.config, 'routes.yaml', loaded.hash, new Date(0));
}

const MINIMAL = 'services:\n  legacy: { url: http://127.0.0.1:3001 }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n';

describe('durations', () => {
  test.each([
    ['250ms', 250],
    ['0s', 0],
    ['10s', 10_000],
    ['1.5s', 1_500],
    ['0.5ms', 1],
    ['5m', 300_000],
    ['1h', 3_600_000],
  ])('%s = %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(['10', '10 s', 's', '-1s', '1d', '1.s', ''])('%j is not a duration', (text) => {
    expect(() => parseDuration(text)).toThrow(RangeError);
  });
});

describe('defaults (SPEC §1.0, §1.1)', () => {
  const snapshot = snapshotOf(MINIMAL);
  test('listeners, limits and drain', () => {
    expect(snapshot.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(snapshot.admin).toEqual({ host: '127.0.0.1', port: 9901, token: '' });
    expect(snapshot.limits).toEqual({ headerTimeoutMs: 10_000, bodyTimeoutMs: 60_000, sendTimeoutMs: 60_000, tunnelIdleTimeoutMs: 3_600_000, maxHeaderBytes: 16_384, maxHeaderCount: 100, maxBodyBytes: undefined });
    expect(snapshot.drainTimeoutMs).toBe(30_000);
    expect(snapshot.accessLog).toBe(true);
    expect(snapshot.trustsPeer('127.0.0.1')).toBe(false);
  });
  test('service timeouts, balancing and outlier detection', () => {
    expect(snapshot.services.get('legacy')).toMatchObject({
      timeouts: { connectMs: 5_000, responseMs: 30_000, idleMs: 60_000 },
      balance: 'round-robin',
      consecutiveFailures: 5,
      legacy: true,
    });
  });
});

describe('values from the file', () => {
  const snapshot = snapshotOf(`limits: { headerTimeout: 2s, bodyTimeout: 15s, sendTimeout: 20s, tunnelIdleTimeout: 90s, maxHeaderBytes: 8192, maxHeaderCount: 20, maxBodyBytes: 1024 }
drainTimeout: 1500ms
timeouts: { connect: 1s, response: 2m }
trustedProxies: [10.0.0.0/8]
services:
  legacy: { url: http://127.0.0.1:3001 }
  orders: { url: http://127.0.0.1:3002, legacy: true, timeouts: { response: 250ms, idle: 1h }, outlier: { consecutiveFailures: 2 } }
  catalog: { urls: [http://127.0.0.1:3003, http://127.0.0.1:3004], balance: least-request, legacy: false }
routes: []
`);
  test('limits, drain and trusted proxies', () => {
    expect(snapshot.limits).toEqual({ headerTimeoutMs: 2_000, bodyTimeoutMs: 15_000, sendTimeoutMs: 20_000, tunnelIdleTimeoutMs: 90_000, maxHeaderBytes: 8192, maxHeaderCount: 20, maxBodyBytes: 1024 });
    expect(snapshot.drainTimeoutMs).toBe(1_500);
    expect([snapshot.trustsPeer('10.1.2.3'), snapshot.trustsPeer('::ffff:10.1.2.3'), snapshot.trustsPeer('11.0.0.1')]).toEqual([true, true, false]);
  });
  test('file-wide timeouts are every service default; a service overrides key by key', () => {
    expect(snapshot.services.get('legacy')?.timeouts).toEqual({ connectMs: 1_000, responseMs: 120_000, idleMs: 60_000 });
    expect(snapshot.services.get('orders')?.timeouts).toEqual({ connectMs: 1_000, responseMs: 250, idleMs: 3_600_000 });
  });
  test('balancing, outlier threshold and the legacy mark', () => {
    expect(snapshot.services.get('orders')).toMatchObject({ balance: 'round-robin', consecutiveFailures: 2, legacy: true });
    expect(snapshot.services.get('catalog')).toMatchObject({ balance: 'least-request', legacy: false });
  });
});

describe('service URLs: origin and base path', () => {
  test.each([
    ['http://127.0.0.1:3001', { origin: 'http://127.0.0.1:3001', basePath: '' }],
    ['http://127.0.0.1:3001/', { origin: 'http://127.0.0.1:3001', basePath: '' }],
    ['http://127.0.0.1:3001/base', { origin: 'http://127.0.0.1:3001', basePath: '/base' }],
    ['http://127.0.0.1:3001/base/v1/', { origin: 'http://127.0.0.1:3001', basePath: '/base/v1' }],
    ['https://Example.COM/x', { origin: 'https://example.com', basePath: '/x' }],
    ['http://example.com:80', { origin: 'http://example.com', basePath: '' }],
    ['http://[::1]:3001/b', { origin: 'http://[::1]:3001', basePath: '/b' }],
  ])('%s', (url, endpoint) => {
    const snapshot = snapshotOf(`services:\n  s: { url: "${url}" }\nroutes: []\n`);
    expect(snapshot.services.get('s')?.endpoints).toEqual([endpoint]);
  });
});

describe('rewrite: stripPrefix then addPrefix, on segment boundaries', () => {
  test.each<[string | undefined, string | undefined, string, string]>([
    ['/api', undefined, '/api/orders', '/orders'],
    ['/api', undefined, '/api', '/'],
    ['/api', undefined, '/api/', '/'],
    ['/api', undefined, '/apix/orders', '/apix/orders'],
    ['/api', undefined, '/other', '/other'],
    ['/api/', undefined, '/api/orders', '/orders'],
    [undefined, '/v2', '/orders', '/v2/orders'],
    [undefined, '/v2/', '/orders', '/v2/orders'],
    [undefined, '/v2', '/', '/v2/'],
    ['/api', '/v2', '/api', '/v2'],
    ['/api', '/v2', '/api/', '/v2/'],
    ['/api', '/v2', '/apix', '/v2/apix'],
    ['/', '/v2', '/x', '/v2/x'],
    [undefined, '/', '/x', '/x'],
    [undefined, undefined, '/x', '/x'],
    // `;` ends a segment for matching (a servlet's path parameters), so for the rewrite too.
    ['/v1', '/internal', '/v1;jsessionid=1/users', '/internal;jsessionid=1/users'],
    ['/v1', undefined, '/v1;jsessionid=1/users', '/;jsessionid=1/users'],
    ['/v1', '/internal', '/v1%3Bx/users', '/internal%3Bx/users'],
    ['/v1', undefined, '/v1;x', '/;x'],
    ['/v1', undefined, '/v1x;y', '/v1x;y'],
  ])('strip %s add %s: %s → %s', (strip, add, path, expected) => {
    expect(compileRewrite(strip, add)(path)).toBe(expected);
  });

  test('a route forwards its rewritten path and host', () => {
    const snapshot = snapshotOf(`${MINIMAL.replace('routes:\n', 'routes:\n  - { name: api, match: { path: /api }, to: legacy, rewrite: { stripPrefix: /api, addPrefix: /v2, host: api.internal } }\n')}`);
    const action = snapshot.routes[0]?.action;
    expect(action?.kind === 'proxy' && [action.rewrite('/api/orders/7'), action.hostHeader]).toEqual(['/v2/orders/7', 'api.internal']);
  });
});

describe('respond routes', () => {
  test('status, body and headers, with defaults', () => {
    const snapshot = snapshotOf(`services: {}\nroutes:\n  - { name: a, match: {}, respond: { status: 503, body: paused, headers: { retry-after: "60" } } }\n  - { name: b, match: {}, respond: { status: 204 } }\n`);
    expect(snapshot.routes.map((r) => r.action)).toEqual([
      { kind: 'respond', status: 503, body: 'paused', headers: { 'retry-after': '60' } },
      { kind: 'respond', status: 204, body: '', headers: {} },
    ]);
  });
});

describe('the snapshot is immutable', () => {
  const snapshot = snapshotOf(MINIMAL);
  const service = snapshot.services.get('legacy');
  const route = snapshot.routes[0];

  test.each([
    ['the snapshot', snapshot],
    ['its limits', snapshot.limits],
    ['its listen address', snapshot.listen],
    ['its routes', snapshot.routes],
    ['a route', route],
    ['a route action', route?.action],
    ['a route condition list', route?.conditions],
    ['a service', service],
    ['a service endpoint list', service?.endpoints],
    ['an endpoint', service?.endpoints[0]],
    ['the services map', snapshot.services],
    ['the parsed source', snapshot.source],
    ['a parsed route', snapshot.source.routes[0]],
    ['a parsed match', snapshot.source.routes[0]?.match],
  ])('%s is frozen', (_name, value) => {
    expect(Object.isFrozen(value)).toBe(true);
  });

  test('writes throw rather than pass silently', () => {
    expect(() => {
      (snapshot as { drainTimeoutMs: number }).drainTimeoutMs = 1;
    }).toThrow(TypeError);
    expect(() => (snapshot.routes as unknown[]).push({})).toThrow(TypeError);
    const services = snapshot.services as Map<string, unknown>;
    expect(() => services.set('x', {})).toThrow(TypeError);
    expect(() => services.delete('legacy')).toThrow(TypeError);
    expect(() => services.clear()).toThrow(TypeError);
    expect([...snapshot.services.keys()]).toEqual(['legacy']);
  });
});
