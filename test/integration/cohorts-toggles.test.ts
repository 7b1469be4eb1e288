import { request } from 'undici';
import { expect, test } from 'vitest';
import { bucketOf } from '../../src/routing/bucket.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Issue 3 item 3 through the real proxy: cohorts (users, header, cookie, percent, and their
 * union) and toggles route requests, `!` negates, a `respond` route behind `toggle: "!name"` is a
 * kill switch flipped by editing the file, and upstreams learn the caller's toggles from ficus
 * alone.
 */

function config(legacy: Upstream, next: Upstream, invoices = true): string {
  return routesYaml(`identity: { header: x-user-id, cookie: uid }
services:
  legacy: { url: ${legacy.url} }
  next: { url: ${next.url} }
cohorts:
  staff: { users: [alice, bob] }
  beta: { header: { name: X-Beta, value: "1" } }
  testers: { cookie: { name: tester, value: "yes" } }
  early: { percent: 30 }
  union: { users: [dave], header: { name: x-team, value: red }, cookie: { name: team, value: red }, percent: 10 }
toggles:
  invoices: { enabled: ${invoices} }
  new-checkout: { cohorts: [staff], percent: 10 }
  dark-mode: { users: [carol] }
  retired: { enabled: false }
routes:
  - name: invoices-off
    match: { path: /invoices, toggle: "!invoices" }
    respond: { status: 503, body: "Invoices are paused", headers: { retry-after: "60" } }
  - { name: who-staff, match: { path: /who, cohort: staff }, respond: { status: 200, body: staff } }
  - { name: who-beta, match: { path: /who, cohort: beta }, respond: { status: 200, body: beta } }
  - { name: who-testers, match: { path: /who, cohort: testers }, respond: { status: 200, body: testers } }
  - { name: who-early, match: { path: /who, cohort: early }, respond: { status: 200, body: early } }
  - { name: who-else, match: { path: /who }, respond: { status: 200, body: none } }
  - { name: union, match: { path: /union, cohort: union }, respond: { status: 200, body: in } }
  - { name: not-union, match: { path: /union }, respond: { status: 200, body: out } }
  - { name: staff-only, match: { path: /admin, cohort: "!staff" }, respond: { status: 403, body: staff only } }
  - { name: checkout-new, match: { path: /checkout, toggle: new-checkout }, to: next }
  - { name: retired-off, match: { path: /retired, toggle: "!retired" }, respond: { status: 410 } }
  - { name: rest, match: { path: / }, to: legacy }
`);
}

async function setup() {
  const legacy = await startUpstream('legacy');
  const next = await startUpstream('next');
  const proxy = await startProxy(config(legacy, next));
  return { proxy, legacy, next };
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** Users `user-N` picked by bucket, so each case holds for any correct bucketing. */
function usersWhere(test: (id: string) => boolean, count = 1): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (test(`user-${i}`)) out.push(`user-${i}`);
  return out;
}
const early = (id: string) => bucketOf('early', id) < 3000;
const [plain] = usersWhere((id) => !early(id) && bucketOf('union', id) >= 1000 && bucketOf('new-checkout', id) >= 1000) as [string];
const [earlyUser] = usersWhere(early) as [string];
const [unionByPercent] = usersWhere((id) => bucketOf('union', id) < 1000) as [string];

test.each<{ name: string; headers: Record<string, string>; path?: string; body: string }>([
  { name: 'listed user', headers: { 'x-user-id': 'alice' }, body: 'staff' },
  { name: 'listed user, from the identity cookie', headers: { cookie: 'uid=bob' }, body: 'staff' },
  { name: 'user names are exact', headers: { 'x-user-id': 'Alice' }, body: early('Alice') ? 'early' : 'none' },
  { name: 'header (name case-insensitive)', headers: { 'x-user-id': plain, 'x-beta': '1' }, body: 'beta' },
  { name: 'header with another value', headers: { 'x-user-id': plain, 'x-beta': 'yes' }, body: 'none' },
  { name: 'cookie', headers: { 'x-user-id': plain, cookie: 'tester=yes' }, body: 'testers' },
  { name: 'cookie with another value', headers: { 'x-user-id': plain, cookie: 'tester=no' }, body: 'none' },
  { name: 'percent (bucket seeded by the cohort name)', headers: { 'x-user-id': earlyUser }, body: 'early' },
  { name: 'nobody', headers: { 'x-user-id': plain }, body: 'none' },
  { name: 'union by user', path: '/union', headers: { 'x-user-id': 'dave' }, body: 'in' },
  { name: 'union by header', path: '/union', headers: { 'x-user-id': plain, 'x-team': 'red' }, body: 'in' },
  { name: 'union by cookie', path: '/union', headers: { 'x-user-id': plain, cookie: 'team=red' }, body: 'in' },
  { name: 'union by percent', path: '/union', headers: { 'x-user-id': unionByPercent }, body: 'in' },
  { name: 'union, in no part', path: '/union', headers: { 'x-user-id': plain, 'x-team': 'blue', cookie: 'team=blue' }, body: 'out' },
])('cohort by $name → $body', async ({ headers, path = '/who', body }) => {
  const { proxy } = await setup();
  expect(await get(`${proxy.app.proxyUrl}${path}`, headers)).toMatchObject({ status: 200, body });
});

test('a percent cohort is the same set of users on every request', async () => {
  const { proxy } = await setup();
  const ids = Array.from({ length: 60 }, (_, i) => `member-${i}`);
  for (let round = 0; round < 2; round++) {
    for (const id of ids) {
      const { body } = await get(`${proxy.app.proxyUrl}/who`, { 'x-user-id': id });
      expect(body, id).toBe(early(id) ? 'early' : 'none');
    }
  }
});

test('"!cohort" matches everyone outside it', async () => {
  const { proxy, legacy } = await setup();
  expect(await get(`${proxy.app.proxyUrl}/admin`, { 'x-user-id': plain })).toMatchObject({ status: 403, body: 'staff only' });
  expect(await get(`${proxy.app.proxyUrl}/admin`)).toMatchObject({ status: 403 });
  expect(await get(`${proxy.app.proxyUrl}/admin`, { 'x-user-id': 'alice' })).toMatchObject({ status: 200 });
  expect(legacy.seen.map((r) => r.url)).toEqual(['/admin']);
});

test('a toggle routes its audience: staff always, others by the toggle-seeded bucket, sticky', async () => {
  const { proxy } = await setup();
  const ids = ['alice', 'bob', ...Array.from({ length: 80 }, (_, i) => `shopper-${i}`)];
  const expected = (id: string) => (id === 'alice' || id === 'bob' || bucketOf('new-checkout', id) < 1000 ? 'next' : 'legacy');
  for (let round = 0; round < 2; round++) {
    for (const id of ids) {
      const { headers } = await get(`${proxy.app.proxyUrl}/checkout`, { 'x-user-id': id });
      expect(headers['x-upstream'], id).toBe(expected(id));
    }
  }
  expect(new Set(ids.map(expected))).toEqual(new Set(['next', 'legacy']));
});

test('"!toggle" on a disabled toggle always holds', async () => {
  const { proxy } = await setup();
  expect((await get(`${proxy.app.proxyUrl}/retired`, { 'x-user-id': 'alice' })).status).toBe(410);
});

test('upstreams receive x-ficus-toggles listing exactly the toggles on for the caller', async () => {
  const { proxy, legacy } = await setup();
  const seen = async (headers: Record<string, string>) => {
    await get(`${proxy.app.proxyUrl}/page`, headers);
    return legacy.seen.at(-1)?.headers['x-ficus-toggles'];
  };
  expect(await seen({ 'x-user-id': 'alice' })).toBe('invoices,new-checkout');
  expect(await seen({ 'x-user-id': 'carol' })).toBe(`invoices${bucketOf('new-checkout', 'carol') < 1000 ? ',new-checkout' : ''},dark-mode`);
  expect(await seen({ 'x-user-id': plain })).toBe('invoices');
});

test('a client cannot grant itself a feature: client-sent x-ficus-* is removed before routing decides', async () => {
  const { proxy, legacy, next } = await setup();
  const forged = { 'x-user-id': plain, 'x-ficus-toggles': 'new-checkout,dark-mode', 'X-Ficus-Anything': 'yes' };
  const checkout = await get(`${proxy.app.proxyUrl}/checkout`, forged);
  expect(checkout.headers['x-upstream']).toBe('legacy');
  expect(next.seen).toEqual([]);
  const sent = legacy.seen.at(-1)?.rawHeaders ?? [];
  const ficusHeaders = sent.filter((_, i) => i % 2 === 0 && sent[i]?.toLowerCase().startsWith('x-ficus-'));
  expect(ficusHeaders).toEqual(['x-ficus-toggles']);
  expect(legacy.seen.at(-1)?.headers['x-ficus-toggles']).toBe('invoices');
});

test('x-ficus-toggles is absent when no toggle is on, even if the client sent one', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services: { legacy: { url: ${legacy.url} } }
toggles:
  beta-search: { users: [alice] }
  off: { enabled: false }
routes: [{ name: rest, match: { path: / }, to: legacy }]
`),
  );
  await get(`${proxy.app.proxyUrl}/`, { 'x-user-id': 'bob', 'x-ficus-toggles': 'beta-search,off' });
  const sent = legacy.seen.at(-1)?.rawHeaders ?? [];
  expect(sent.map((h) => h.toLowerCase())).not.toContain('x-ficus-toggles');
  await get(`${proxy.app.proxyUrl}/`, { 'x-user-id': 'alice' });
  expect(legacy.seen.at(-1)?.headers['x-ficus-toggles']).toBe('beta-search');
});

test('a respond route behind toggle "!invoices" is a kill switch, flipped by editing the file and POST /reload', async () => {
  const { proxy, legacy, next } = await setup();
  const invoices = () => get(`${proxy.app.proxyUrl}/invoices/42`, { 'x-user-id': 'alice' });
  const reload = async () => {
    const res = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
    expect(((await res.body.json()) as { result: string }).result).toBe('success');
  };

  expect(await invoices()).toMatchObject({ status: 200, headers: { 'x-upstream': 'legacy' } });

  await proxy.write(config(legacy, next, false));
  await reload();
  const paused = await invoices();
  expect(paused).toMatchObject({ status: 503, body: 'Invoices are paused', headers: { 'retry-after': '60' } });
  expect(legacy.seen.filter((r) => r.url.startsWith('/invoices'))).toHaveLength(1);
  // The rest of the site keeps working, and services learn the switch is off.
  await get(`${proxy.app.proxyUrl}/page`, { 'x-user-id': 'alice' });
  expect(legacy.seen.at(-1)?.headers['x-ficus-toggles']).toBe('new-checkout');

  await proxy.write(config(legacy, next, true));
  await reload();
  expect(await invoices()).toMatchObject({ status: 200, headers: { 'x-upstream': 'legacy' } });
  expect(legacy.seen.at(-1)?.headers['x-ficus-toggles']).toBe('invoices,new-checkout');
});

test('a cohort cookie with a non-ASCII value matches what a browser sends (UTF-8), as cohort headers do', async () => {
  const legacy = await startUpstream('legacy');
  const next = await startUpstream('next');
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  next: { url: ${next.url} }
cohorts:
  danes: { cookie: { name: team, value: "rød" } }
routes:
  - { name: danes, match: { path: /, cohort: danes }, to: next }
  - { name: rest, match: { path: / }, to: legacy }
`),
  );
  const utf8OnTheWire = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
  expect((await get(`${proxy.app.proxyUrl}/`, { cookie: utf8OnTheWire('team=rød') })).headers['x-upstream']).toBe('next');
  expect((await get(`${proxy.app.proxyUrl}/`, { cookie: 'team=rod' })).headers['x-upstream']).toBe('legacy');
});
