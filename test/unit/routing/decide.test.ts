import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import { Audience } from '../../../src/routing/audience.js';
import { bucketOf } from '../../../src/routing/bucket.js';
import { decide, explainDecision } from '../../../src/routing/decide.js';
import type { Caller } from '../../../src/routing/identity.js';
import { RequestView } from '../../../src/routing/request-view.js';

/** SPEC §1.4 first bullet: `weight` % of users, sticky, go to `canary.to`; the rest to `to`. */

function snapshotOf(yaml: string): Snapshot {
  const loaded = parseRoutes(`version: 1\n${yaml}`, 'routes.yaml', {});
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`).join('\n'));
  return compile(loaded.config, 'routes.yaml', loaded.hash, new Date(0));
}

function splitYaml(weight: number, extra = ''): string {
  return `
services:
  legacy: { url: http://127.0.0.1:3001 }
  search-v2: { url: http://127.0.0.1:3002 }
  cart-v2: { url: http://127.0.0.1:3003 }
cohorts:
  staff: { users: [alice] }
routes:
  - { name: paused, match: { path: /paused }, respond: { status: 503 } }
  - { name: search, match: { path: /search }, to: legacy, canary: { to: search-v2, weight: ${weight} } }
  - { name: cart, match: { path: /cart }, to: legacy, canary: { to: cart-v2, weight: ${weight}, seed: search } }
  - { name: staff-only, match: { path: /staff, cohort: staff }, to: legacy, canary: { to: search-v2, weight: ${weight} } }
${extra}`;
}

const user = (id: string): Caller => ({ id, known: true, setCookie: undefined });

function viewFor(snapshot: Snapshot, path: string, caller: Caller): RequestView {
  const view = new RequestView('GET', path, '', 'localhost', {});
  view.audience = new Audience(snapshot.audience, caller, {});
  return view;
}

const side = (snapshot: Snapshot, path: string, id: string) => decide(snapshot, viewFor(snapshot, path, user(id)));

describe('decide', () => {
  const at20 = snapshotOf(splitYaml(20));

  test('a user below weight × 100 in the route-seeded bucket goes to the canary, the rest to "to"', () => {
    // bucketOf("search", "alice") = 2835 and ("search", "bob") = 1444 (pinned in bucket.test.ts).
    expect(side(at20, '/search', 'bob')).toMatchObject({ route: { name: 'search' }, service: 'search-v2', side: 'canary' });
    expect(side(at20, '/search', 'alice')).toMatchObject({ route: { name: 'search' }, service: 'legacy', side: 'stable' });
    expect(side(snapshotOf(splitYaml(28.35)), '/search', 'alice').side).toBe('stable');
    expect(side(snapshotOf(splitYaml(28.36)), '/search', 'alice').side).toBe('canary');
  });

  test('for any user, the side is the bucket seeded by the route name, or by canary.seed', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1 }), (id) => {
        const expected = bucketOf('search', id) < 2000 ? 'canary' : 'stable';
        expect(side(at20, '/search', id).side).toBe(expected);
        // "cart" names "search" as its seed: the very same users.
        expect(side(at20, '/cart', id).side).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  test('each route is its own draw: the same weight picks different users on different routes', () => {
    const ids = Array.from({ length: 1_000 }, (_, i) => `user-${i}`);
    const onSearch = ids.filter((id) => side(at20, '/search', id).side === 'canary');
    const separate = snapshotOf(splitYaml(20).replace('seed: search', 'seed: cart'));
    const onCart = ids.filter((id) => side(separate, '/cart', id).side === 'canary');
    expect(onSearch.length).toBeGreaterThan(150);
    expect(onCart.length).toBeGreaterThan(150);
    expect(onCart).not.toEqual(onSearch);
  });

  test('the same user always gets the same side', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.double({ min: 0, max: 100, noNaN: true }), (id, weight) => {
        const snapshot = snapshotOf(splitYaml(weight));
        const first = side(snapshot, '/search', id).side;
        for (let i = 0; i < 3; i++) expect(side(snapshot, '/search', id).side).toBe(first);
      }),
      { numRuns: 100 },
    );
  });

  test('raising the weight keeps every user who was on the canary', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ unit: 'grapheme', minLength: 1 }), { minLength: 20, maxLength: 20 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (ids, a, b) => {
          const [low, high] = [snapshotOf(splitYaml(Math.min(a, b))), snapshotOf(splitYaml(Math.max(a, b)))];
          for (const id of ids) if (side(low, '/search', id).side === 'canary') expect(side(high, '/search', id).side).toBe('canary');
        },
      ),
      { numRuns: 100 },
    );
  });

  test.each([
    [0, 'stable'],
    [100, 'canary'],
  ])('weight %d sends everybody to the %s side', (weight, expected) => {
    const snapshot = snapshotOf(splitYaml(weight));
    for (let i = 0; i < 200; i++) expect(side(snapshot, '/search', `user-${i}`).side).toBe(expected);
  });

  test('a respond route and no route at all have no service', () => {
    expect(side(at20, '/paused', 'bob')).toMatchObject({ route: { name: 'paused' }, service: undefined, side: 'stable' });
    expect(side(at20, '/nowhere', 'bob')).toEqual({ route: undefined, service: undefined, side: 'stable' });
  });

  test('a route without a canary always takes its "to"', () => {
    const snapshot = snapshotOf(splitYaml(100, '  - { name: rest, match: { path: / }, to: legacy }'));
    expect(side(snapshot, '/other', 'bob')).toMatchObject({ route: { name: 'rest' }, service: 'legacy', side: 'stable' });
  });
});

describe('explainDecision gives the very decision the proxy takes', () => {
  const snapshot = snapshotOf(splitYaml(37.5, '  - { name: rest, match: { path: / }, to: legacy }'));

  test('for any path and user', () => {
    const path = fc.constantFrom('/search', '/search/x', '/cart', '/staff', '/paused', '/elsewhere', '/searchx');
    const caller = fc.record({ id: fc.oneof(fc.constantFrom('alice', 'bob'), fc.string()), known: fc.boolean(), setCookie: fc.constant(undefined) });
    fc.assert(
      fc.property(path, caller, (p, c) => {
        const live = decide(snapshot, viewFor(snapshot, p, c));
        const explained = explainDecision(snapshot, viewFor(snapshot, p, c));
        expect({ route: explained.route?.name, service: explained.service, side: explained.side }).toEqual({
          route: live.route?.name,
          service: live.service,
          side: live.side,
        });
      }),
      { numRuns: 500 },
    );
  });

  test('and says why earlier routes were passed over', () => {
    const explained = explainDecision(snapshot, viewFor(snapshot, '/staff', user('bob')));
    expect(explained.route?.name).toBe('rest');
    expect(explained.trace.skipped).toEqual([
      { route: 'paused', failed: 'path under /paused' },
      { route: 'search', failed: 'path under /search' },
      { route: 'cart', failed: 'path under /cart' },
      { route: 'staff-only', failed: 'caller in cohort staff' },
    ]);
  });
});
