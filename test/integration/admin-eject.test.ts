import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { EVENT } from '../../src/observe/log.js';
import { bucketOf } from '../../src/routing/bucket.js';
import { canaryYaml } from '../helpers/canary.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/*
 * SPEC §3: `POST /routes/{name}/eject` forces a canary out and `POST /routes/{name}/readmit`
 * brings it back, with the admin token when one is set; both are logged at warn, counted,
 * audited and shown, as the analysis's own decisions are.
 */

const TOKEN = 's3cret-token';
const USERS = Array.from({ length: 40 }, (_, i) => `user-${i}`);
const onCanary = USERS.filter((id) => bucketOf('search', id) < 3_000);

async function setup(token = TOKEN) {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const proxy = await startProxy(
    canaryYaml(legacy.url, v2.url, '{ to: search-v2, weight: 30 }', { head: 'auditLog: audit.jsonl\n' }).replace('admin: { host: 127.0.0.1, port: 0 }', `admin: { host: 127.0.0.1, port: 0, token: "${token}" }`),
  );
  return { proxy, v2 };
}

/** `token: null` sends no Authorization header at all. */
async function post(proxy: TestProxy, path: string, token: string | null = TOKEN) {
  const res = await request(`${proxy.app.adminUrl}${path}`, { method: 'POST', headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function sides(proxy: TestProxy): Promise<string[]> {
  return Promise.all(
    onCanary.map(async (id) => {
      const res = await request(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': id } });
      await res.body.dump();
      return String(res.headers['x-upstream']);
    }),
  );
}

const metricsOf = async (proxy: TestProxy) => (await request(`${proxy.app.adminUrl}/metrics`)).body.text();

test('eject sends every canary user to the stable side at once; readmit brings them back; each is said, counted, audited and shown', async () => {
  const { proxy } = await setup();
  expect(new Set(await sides(proxy))).toEqual(new Set(['search-v2']));

  const ejected = await post(proxy, '/routes/search/eject');
  expect(ejected).toEqual({ status: 200, body: expect.objectContaining({ route: 'search', changed: true, state: 'ejected', weight: 0, fileWeight: 30, reason: 'manual', message: 'ejected by an operator' }) });
  expect(new Set(await sides(proxy))).toEqual(new Set(['legacy']));
  let metrics = await metricsOf(proxy);
  expect(metrics).toContain('ficus_ejections_total{route="search",reason="manual"} 1');
  expect(metrics).toContain('ficus_canary_weight{route="search"} 0');

  // Asked again: nothing changes, nothing is counted twice.
  expect((await post(proxy, '/routes/search/eject')).body).toMatchObject({ changed: false, state: 'ejected' });
  expect(await metricsOf(proxy)).toContain('ficus_ejections_total{route="search",reason="manual"} 1');

  const readmitted = await post(proxy, '/routes/search/readmit');
  expect(readmitted).toEqual({ status: 200, body: expect.objectContaining({ route: 'search', changed: true, state: 'running', weight: 30, message: 'readmitted at 30 % (was ejected: manual)' }) });
  expect(readmitted.body.reason).toBeUndefined();
  expect(new Set(await sides(proxy))).toEqual(new Set(['search-v2']));
  metrics = await metricsOf(proxy);
  expect(metrics).toContain('ficus_canary_weight{route="search"} 30');
  expect((await post(proxy, '/routes/search/readmit')).body).toMatchObject({ changed: false, state: 'running' });

  expect(proxy.logs.filter((l) => l.event === EVENT.canaryEjected || l.event === EVENT.canaryReadmitted).map((l) => [l.level, l.event, l.trigger, l.reason])).toEqual([
    [40, EVENT.canaryEjected, 'admin', 'manual'],
    [40, EVENT.canaryReadmitted, 'admin', 'manual'],
  ]);
  await proxy.app.audit.settled();
  const audit = (await readFile(join(proxy.dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(audit.filter((r) => r.kind !== 'reload')).toEqual([
    expect.objectContaining({ kind: 'ejection', route: 'search', canary: 'search-v2', trigger: 'admin', reason: 'manual', fromWeight: 30, toWeight: 0 }),
    expect.objectContaining({ kind: 'readmission', route: 'search', canary: 'search-v2', trigger: 'admin', reason: 'manual', fromWeight: 0, toWeight: 30 }),
  ]);
});

test('/status shows the ejection: state, effective weight, reason, message and since', async () => {
  const { proxy } = await setup();
  await post(proxy, '/routes/search/eject');
  const doc = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { routes: Record<string, unknown>[] };
  expect(doc.routes.find((r) => r.name === 'search')).toMatchObject({
    migration: 'canary',
    canary: 'search-v2',
    state: 'ejected',
    weight: 0,
    fileWeight: 30,
    reason: 'manual',
    message: 'ejected by an operator',
    since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
  });
  // The live explain splits as the proxy does.
  const user = onCanary[0] as string;
  const explained = (await (await request(`${proxy.app.adminUrl}/explain?url=/search&user=${user}`)).body.json()) as Record<string, unknown>;
  expect(explained).toMatchObject({ side: 'stable', service: 'legacy' });
});

test.each([
  { name: 'no token', token: null, status: 401 },
  { name: 'a wrong token', token: 'not-it', status: 401 },
])('with admin.token set, eject and readmit with $name answer $status and change nothing', async ({ token, status }) => {
  const { proxy } = await setup();
  for (const action of ['eject', 'readmit']) expect((await post(proxy, `/routes/search/${action}`, token)).status).toBe(status);
  expect(proxy.app.store.current.canaries[0]?.state).toBe('running');
});

test('without admin.token, eject needs no Authorization', async () => {
  const { proxy } = await setup('');
  expect((await post(proxy, '/routes/search/eject', null)).status).toBe(200);
  expect(proxy.app.store.current.canaries[0]?.state).toBe('ejected');
});

test.each([
  { path: '/routes/nope/eject', error: 'no route named "nope"' },
  { path: '/routes/rest/eject', error: 'route "rest" has no canary' },
  { path: '/routes/rest/readmit', error: 'route "rest" has no canary' },
])('POST $path answers 404: $error', async ({ path, error }) => {
  const { proxy } = await setup();
  expect(await post(proxy, path)).toEqual({ status: 404, body: { error } });
});

test('GET on an eject URL is refused: 405, naming POST', async () => {
  const { proxy } = await setup();
  const res = await request(`${proxy.app.adminUrl}/routes/search/eject`);
  expect(res.statusCode).toBe(405);
  expect(res.headers.allow).toBe('POST');
  await res.body.dump();
  expect(proxy.app.store.current.canaries[0]?.state).toBe('running');
});
