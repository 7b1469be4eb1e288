import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import { Audience } from '../../../src/routing/audience.js';
import { bucketOf } from '../../../src/routing/bucket.js';
import type { Caller } from '../../../src/routing/identity.js';
import { RequestView } from '../../../src/routing/request-view.js';
import { firstMatch, traceMatch } from '../../../src/routing/route.js';

/** SPEC §1.3 cohorts (a union of users, header, cookie, percent) and toggles; §1.2 match.cohort/toggle. */

function snapshotOf(body: string | object): Snapshot {
  const text = typeof body === 'string' ? `version: 1\n${body}` : JSON.stringify({ version: 1, ...body });
  const loaded = parseRoutes(text, 'routes.yaml', {});
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`).join('\n'));
  return compile(loaded.config, 'routes.yaml', loaded.hash, new Date(0));
}

const user = (id: string): Caller => ({ id, known: true, setCookie: undefined });
const anonymous = (id: string): Caller => ({ id, known: false, setCookie: undefined });

const snapshot = snapshotOf(`
services:
  legacy: { url: http://127.0.0.1:3001 }
  next: { url: http://127.0.0.1:3002 }
cohorts:
  staff: { users: [alice, bob] }
  beta: { header: { name: X-Beta, value: "1" } }
  testers: { cookie: { name: tester, value: "yes" } }
  early: { percent: 5 }
  early-reseeded: { percent: 5, seed: search }
  swiss: { header: { name: x-region, value: "zürich" } }
  mixed: { users: [carol], header: { name: x-beta, value: "2" }, cookie: { name: tester, value: "mixed" }, percent: 0.5 }
toggles:
  invoices: { enabled: true }
  everyone: {}
  paused: { enabled: false }
  paused-for-staff: { enabled: false, cohorts: [staff], users: [dave], percent: 100 }
  for-dave: { users: [dave] }
  for-staff-or-beta: { cohorts: [staff, beta] }
  ten: { percent: 10 }
  ten-reseeded: { percent: 10, seed: early }
  nobody: { percent: 0 }
  nobody-listed: { users: [] }
  any-audience: { users: [erin], cohorts: [testers], percent: 1 }
routes:
  - { name: rest, match: { path: / }, to: legacy }
`);

const cohortIndex = (name: string) => snapshot.audience.cohorts.findIndex((c) => c.name === name);
const toggleIndex = (name: string) => snapshot.audience.toggles.findIndex((t) => t.name === name);
const audienceOf = (caller: Caller, headers: IncomingHttpHeaders = {}) => new Audience(snapshot.audience, caller, headers);

/** Users sorted by where they fall for a seed, so tests need not depend on any one hash value. */
function usersWhere(seed: string, inside: (bucket: number) => boolean, count = 5): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (inside(bucketOf(seed, `user-${i}`))) out.push(`user-${i}`);
  return out;
}

describe('cohorts', () => {
  test.each<{ cohort: string; caller: Caller; headers?: IncomingHttpHeaders; inside: boolean }>([
    { cohort: 'staff', caller: user('alice'), inside: true },
    { cohort: 'staff', caller: user('bob'), inside: true },
    { cohort: 'staff', caller: user('carol'), inside: false },
    { cohort: 'staff', caller: user('Alice'), inside: false },
    // An anonymous id is random or client-chosen: it never names a listed user.
    { cohort: 'staff', caller: anonymous('alice'), inside: false },
    { cohort: 'beta', caller: anonymous('x'), headers: { 'x-beta': '1' }, inside: true },
    { cohort: 'beta', caller: anonymous('x'), headers: { 'x-beta': '0' }, inside: false },
    { cohort: 'beta', caller: anonymous('x'), headers: { 'x-beta': '1 ' }, inside: false },
    { cohort: 'beta', caller: anonymous('x'), headers: {}, inside: false },
    // Sent as UTF-8, read by Node as latin1: compared as the file writes it.
    { cohort: 'swiss', caller: anonymous('x'), headers: { 'x-region': Buffer.from('zürich').toString('latin1') }, inside: true },
    { cohort: 'swiss', caller: anonymous('x'), headers: { 'x-region': 'zurich' }, inside: false },
    { cohort: 'testers', caller: anonymous('x'), headers: { cookie: 'a=b; tester=yes' }, inside: true },
    { cohort: 'testers', caller: anonymous('x'), headers: { cookie: 'tester=no' }, inside: false },
    { cohort: 'testers', caller: anonymous('x'), headers: { cookie: 'Tester=yes' }, inside: false },
    { cohort: 'testers', caller: anonymous('x'), headers: { 'x-tester': 'yes' }, inside: false },
    // A union: any one key is enough.
    { cohort: 'mixed', caller: user('carol'), inside: true },
    { cohort: 'mixed', caller: anonymous('x'), headers: { 'x-beta': '2' }, inside: true },
    { cohort: 'mixed', caller: anonymous('x'), headers: { cookie: 'tester=mixed' }, inside: true },
    { cohort: 'mixed', caller: user('alice'), headers: { 'x-beta': '1', cookie: 'tester=yes' }, inside: bucketOf('mixed', 'alice') < 50 },
  ])('$cohort holds $inside for $caller.id ($caller.known) with $headers', ({ cohort, caller, headers, inside }) => {
    expect(audienceOf(caller, headers).inCohort(cohortIndex(cohort))).toBe(inside);
  });

  test.each([
    ['early', 'early'],
    ['early-reseeded', 'search'],
  ])('percent cohort %s buckets by seed %j, for known and anonymous ids alike', (cohort, seed) => {
    for (const id of usersWhere(seed, (b) => b < 500)) {
      expect(audienceOf(user(id)).inCohort(cohortIndex(cohort))).toBe(true);
      expect(audienceOf(anonymous(id)).inCohort(cohortIndex(cohort))).toBe(true);
    }
    for (const id of usersWhere(seed, (b) => b >= 500)) expect(audienceOf(user(id)).inCohort(cohortIndex(cohort))).toBe(false);
  });
});

describe('toggles: on when enabled and (no audience, or the caller is in any audience)', () => {
  test.each<{ toggle: string; caller: Caller; headers?: IncomingHttpHeaders; on: boolean }>([
    { toggle: 'invoices', caller: anonymous('x'), on: true },
    { toggle: 'everyone', caller: anonymous('x'), on: true },
    { toggle: 'paused', caller: user('alice'), on: false },
    { toggle: 'paused-for-staff', caller: user('alice'), on: false },
    { toggle: 'paused-for-staff', caller: user('dave'), on: false },
    { toggle: 'for-dave', caller: user('dave'), on: true },
    { toggle: 'for-dave', caller: user('alice'), on: false },
    { toggle: 'for-dave', caller: anonymous('dave'), on: false },
    { toggle: 'for-staff-or-beta', caller: user('bob'), on: true },
    { toggle: 'for-staff-or-beta', caller: anonymous('x'), headers: { 'x-beta': '1' }, on: true },
    { toggle: 'for-staff-or-beta', caller: user('carol'), on: false },
    { toggle: 'nobody', caller: user('alice'), on: false },
    { toggle: 'nobody-listed', caller: user('alice'), on: false },
    { toggle: 'any-audience', caller: user('erin'), on: true },
    { toggle: 'any-audience', caller: anonymous('x'), headers: { cookie: 'tester=yes' }, on: true },
  ])('$toggle is $on for $caller.id ($caller.known) with $headers', ({ toggle, caller, headers, on }) => {
    expect(audienceOf(caller, headers).toggleOn(toggleIndex(toggle))).toBe(on);
  });

  test.each([
    ['ten', 'ten'],
    ['ten-reseeded', 'early'],
  ])('percent toggle %s buckets by seed %j', (toggle, seed) => {
    for (const id of usersWhere(seed, (b) => b < 1000)) expect(audienceOf(user(id)).toggleOn(toggleIndex(toggle))).toBe(true);
    for (const id of usersWhere(seed, (b) => b >= 1000)) expect(audienceOf(anonymous(id)).toggleOn(toggleIndex(toggle))).toBe(false);
  });
});

describe('x-ficus-toggles', () => {
  test('lists exactly the toggles on for the caller, in file order', () => {
    const only = snapshotOf(`
services: { a: { url: "http://127.0.0.1:1" } }
cohorts: { staff: { users: [alice] }, beta: { header: { name: x-beta, value: "1" } } }
toggles:
  zeta: { users: [dave] }
  alpha: {}
  off: { enabled: false }
  for-staff: { cohorts: [staff] }
  for-beta: { cohorts: [beta] }
routes: []
`);
    const header = (caller: Caller, headers: IncomingHttpHeaders = {}) => new Audience(only.audience, caller, headers).togglesHeader();
    expect(header(user('dave'))).toBe('zeta,alpha');
    expect(header(user('alice'))).toBe('alpha,for-staff');
    expect(header(user('alice'), { 'x-beta': '1' })).toBe('alpha,for-staff,for-beta');
    expect(header(anonymous('dave'))).toBe('alpha');
  });

  test('is absent when no toggle is on', () => {
    const only = snapshotOf({ services: { a: { url: 'http://127.0.0.1:1' } }, toggles: { off: { enabled: false }, staff: { users: ['alice'] } }, routes: [] });
    expect(new Audience(only.audience, user('bob'), {}).togglesHeader()).toBeUndefined();
    expect(new Audience(only.audience, user('alice'), {}).togglesHeader()).toBe('staff');
  });
});

describe('against a model of the rules, for any cohorts, toggles and caller', () => {
  const pool = ['alice', 'bob', 'carol', 'dave'];
  const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
  const percent = fc.constantFrom(0, 0.5, 10, 50, 99.5, 100);
  const cohortSpec = fc
    .record({
      users: maybe(fc.subarray(pool)),
      header: maybe(fc.record({ name: fc.constant('x-team'), value: fc.constantFrom('red', 'blue') })),
      cookie: maybe(fc.record({ name: fc.constant('team'), value: fc.constantFrom('red', 'blue') })),
      percent: maybe(percent),
    })
    .filter((c) => Object.values(c).some((v) => v !== undefined));
  const toggleSpec = (cohorts: number) =>
    fc.record({
      enabled: maybe(fc.boolean()),
      users: maybe(fc.subarray(pool)),
      cohorts: maybe(fc.subarray(Array.from({ length: cohorts }, (_, i) => `c${i}`))),
      percent: maybe(percent),
    });
  const world = fc.array(cohortSpec, { minLength: 1, maxLength: 4 }).chain((cohorts) =>
    fc.record({
      cohorts: fc.constant(cohorts),
      toggles: fc.array(toggleSpec(cohorts.length), { minLength: 1, maxLength: 4 }),
      caller: fc.record({ id: fc.oneof(fc.constantFrom(...pool), fc.uuid()), known: fc.boolean() }),
      header: maybe(fc.constantFrom('red', 'blue', 'green')),
      cookie: maybe(fc.constantFrom('red', 'blue', 'green')),
    }),
  );
  type Cohort = { users?: string[] | undefined; header?: { value: string } | undefined; cookie?: { value: string } | undefined; percent?: number | undefined };

  test('every cohort and toggle answer, and the header, agree with SPEC §1.3', () => {
    fc.assert(
      fc.property(world, ({ cohorts, toggles, caller, header, cookie }) => {
        const compiled = snapshotOf({
          services: { a: { url: 'http://127.0.0.1:1' } },
          cohorts: Object.fromEntries(cohorts.map((c, i) => [`c${i}`, c])),
          toggles: Object.fromEntries(toggles.map((t, i) => [`t${i}`, t])),
          routes: [],
        });
        const headers: IncomingHttpHeaders = {};
        if (header !== undefined) headers['x-team'] = header;
        if (cookie !== undefined) headers.cookie = `team=${cookie}`;
        const audience = new Audience(compiled.audience, { ...caller, setCookie: undefined }, headers);
        const within = (seed: string, p: number | undefined) => p !== undefined && bucketOf(seed, caller.id) < Math.round(p * 100);
        const inCohort = (c: Cohort, i: number) =>
          (caller.known && (c.users?.includes(caller.id) ?? false)) ||
          (c.header !== undefined && c.header.value === header) ||
          (c.cookie !== undefined && c.cookie.value === cookie) ||
          within(`c${i}`, c.percent);
        cohorts.forEach((c, i) => expect(audience.inCohort(i), `c${i}`).toBe(inCohort(c, i)));
        const on = toggles.map((t, i) => {
          if (t.enabled === false) return false;
          if (t.users === undefined && t.cohorts === undefined && t.percent === undefined) return true;
          return (
            (caller.known && (t.users?.includes(caller.id) ?? false)) ||
            (t.cohorts?.some((name) => inCohort(cohorts[Number(name.slice(1))] as Cohort, Number(name.slice(1)))) ?? false) ||
            within(`t${i}`, t.percent)
          );
        });
        on.forEach((value, i) => expect(audience.toggleOn(i), `t${i}`).toBe(value));
        const names = toggles.map((_, i) => `t${i}`).filter((_, i) => on[i]);
        expect(audience.togglesHeader()).toBe(names.length > 0 ? names.join(',') : undefined);
      }),
      { numRuns: 300 },
    );
  });
});

describe('match.cohort and match.toggle, with "!" negation', () => {
  const routed = snapshotOf(`
services:
  legacy: { url: http://127.0.0.1:3001 }
cohorts:
  staff: { users: [alice] }
toggles:
  invoices: { enabled: true, users: [alice, bob] }
routes:
  - { name: invoices-off, match: { path: /invoices, toggle: "!invoices" }, respond: { status: 503 } }
  - { name: staff-reports, match: { path: /reports, cohort: staff }, to: legacy }
  - { name: public-reports, match: { path: /reports, cohort: "!staff" }, to: legacy }
  - { name: new-invoices, match: { path: /invoices, toggle: invoices }, to: legacy }
`);
  const route = (path: string, caller: Caller) => {
    const view = new RequestView('GET', path, '', 'localhost', {});
    view.audience = new Audience(routed.audience, caller, {});
    return firstMatch(routed.routes, view)?.name;
  };

  test.each([
    ['/reports', user('alice'), 'staff-reports'],
    ['/reports', user('bob'), 'public-reports'],
    ['/reports', anonymous('alice'), 'public-reports'],
    ['/invoices', user('bob'), 'new-invoices'],
    ['/invoices', user('carol'), 'invoices-off'],
  ])('%s for %o → %s', (path, caller, name) => {
    expect(route(path, caller)).toBe(name);
  });

  test('explain says which audience condition passed a route over', () => {
    const view = new RequestView('GET', '/reports', '', 'localhost', {});
    view.audience = new Audience(routed.audience, user('bob'), {});
    expect(traceMatch(routed.routes, view).skipped).toEqual([
      { route: 'invoices-off', failed: 'path under /invoices' },
      { route: 'staff-reports', failed: 'caller in cohort staff' },
    ]);
    const off = new RequestView('GET', '/invoices', '', 'localhost', {});
    off.audience = new Audience(routed.audience, user('alice'), {});
    expect(traceMatch(routed.routes, off).skipped).toEqual([
      { route: 'invoices-off', failed: 'toggle invoices off for caller' },
      { route: 'staff-reports', failed: 'path under /reports' },
      { route: 'public-reports', failed: 'path under /reports' },
    ]);
  });

  test('audience conditions run after the request-only ones, so most routes are ruled out before any bucketing', () => {
    for (const r of routed.routes) {
      const keys = r.conditions.map((c) => c.key);
      const firstAudience = keys.findIndex((k) => k === 'cohort' || k === 'toggle');
      if (firstAudience !== -1) expect(keys.slice(firstAudience).every((k) => k === 'cohort' || k === 'toggle')).toBe(true);
    }
  });
});
