import { expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import { explain } from '../../../src/explain/explain.js';
import { Audience } from '../../../src/routing/audience.js';
import { bucketOf } from '../../../src/routing/bucket.js';
import { decide } from '../../../src/routing/decide.js';
import { RequestView } from '../../../src/routing/request-view.js';

/**
 * The proxy splits a canary route by the canary's effective weight (0 while ejected, the step
 * reached during a rollout), never by the file's alone; explain, given the same live weights,
 * says what the proxy does.
 */

function snapshotOf(): Snapshot {
  const loaded = parseRoutes(
    `version: 1
identity: { header: x-user-id }
services:
  legacy: { url: http://127.0.0.1:3001 }
  search-v2: { url: http://127.0.0.1:3002 }
routes:
  - { name: rest-first, match: { path: /rest }, to: legacy }
  - { name: search, match: { path: /search }, to: legacy, canary: { to: search-v2, weight: 50 } }
`,
    'routes.yaml',
    {},
  );
  if (!loaded.ok) throw new Error('invalid');
  return compile(loaded.config, 'routes.yaml', loaded.hash);
}

const snapshot = snapshotOf();
const USERS = Array.from({ length: 300 }, (_, i) => `user-${i}`);

function sideOf(id: string, live?: readonly ({ weight: number } | undefined)[]) {
  const view = new RequestView('GET', '/search', '', 'localhost', {});
  view.audience = new Audience(snapshot.audience, { id, known: true, setCookie: undefined }, {});
  return decide(snapshot, view, live).side;
}

test.each([
  { name: 'no runtime state: the file’s 50 %', live: undefined, weight: 50 },
  { name: 'ejected: 0 %', live: [undefined, { weight: 0 }], weight: 0 },
  { name: 'on a step of the rollout: 80 %', live: [undefined, { weight: 80 }], weight: 80 },
  { name: 'promoted: 100 %', live: [undefined, { weight: 100 }], weight: 100 },
])('$name', ({ live, weight }) => {
  for (const id of USERS) expect(sideOf(id, live), id).toBe(bucketOf('search', id) < weight * 100 ? 'canary' : 'stable');
});

test('the live weight of another route index changes nothing here', () => {
  for (const id of USERS) expect(sideOf(id, [{ weight: 0 }, undefined])).toBe(sideOf(id));
});

test('explain given the live weights shows the effective weight, says why, and agrees with the proxy', () => {
  const user = USERS.find((id) => bucketOf('search', id) < 5_000) as string;
  const offline = explain(snapshot, { method: 'GET', url: '/search', user });
  expect(offline).toMatchObject({ side: 'canary', service: 'search-v2' });
  expect(offline.buckets).toEqual([expect.objectContaining({ of: 'canary search → search-v2', percent: 50, inside: true })]);

  const ejected = explain(snapshot, { method: 'GET', url: '/search', user }, undefined, { weights: [undefined, { weight: 0 }] });
  expect(ejected).toMatchObject({ side: 'stable', service: 'legacy' });
  expect(ejected.buckets).toEqual([expect.objectContaining({ percent: 0, inside: false })]);
  expect(ejected.notes).toContain('canary search runs at 0 % right now (the file says 50 %): ejected, or on a step of its rollout');
  expect(ejected.side).toBe(sideOf(user, [undefined, { weight: 0 }]));
});
