import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { EVENT } from '../../src/observe/log.js';
import { bucketOf } from '../../src/routing/bucket.js';
import { canaryYaml } from '../helpers/canary.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/*
 * SPEC §1.4 and §1.6: an ejection lasts until the route's canary block changes in the file.
 * A reload that leaves the block alone keeps the canary ejected (and its windows, and its step);
 * a changed block is a new release: running again at the new weight, said as a readmission.
 */

const USERS = Array.from({ length: 40 }, (_, i) => `user-${i}`);

function config(legacy: Upstream, v2: Upstream, canary: string, extra = ''): string {
  return canaryYaml(legacy.url, v2.url, canary, { head: 'auditLog: audit.jsonl\n', extraRoutes: extra });
}

async function onCanary(proxy: TestProxy): Promise<string[]> {
  const sides = await Promise.all(
    USERS.map(async (id) => {
      const res = await request(`${proxy.app.proxyUrl}/search`, { headers: { 'x-user-id': id } });
      await res.body.dump();
      return res.headers['x-upstream'] === 'search-v2' ? id : undefined;
    }),
  );
  return sides.filter((id): id is string => id !== undefined);
}

const expected = (weight: number) => USERS.filter((id) => bucketOf('search', id) < weight * 100);

test('an ejected canary stays ejected across reloads that leave its block alone, and a changed block readmits it at the new weight', async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const block = '{ to: search-v2, weight: 30, analysis: { interval: 1h, consecutiveFailures: 5 } }';
  const proxy = await startProxy(config(legacy, v2, block));
  const reload = async (text: string) => {
    await proxy.write(text);
    expect((await proxy.app.reload('admin')).result).toBe('success');
  };
  expect(await onCanary(proxy)).toEqual(expected(30));
  expect((await request(`${proxy.app.adminUrl}/routes/search/eject`, { method: 'POST' })).statusCode).toBe(200);
  expect(await onCanary(proxy)).toEqual([]);

  // Another route added, the block the same (written differently): still ejected.
  await reload(config(legacy, v2, block.replace('{ to: search-v2, weight: 30,', '{ weight: 30, to: search-v2,'), '  - { name: extra, match: { path: /extra }, to: search-v2 }\n'));
  expect(proxy.app.store.current.canaries[0]?.state).toBe('ejected');
  expect(await onCanary(proxy)).toEqual([]);
  expect(await (await request(`${proxy.app.adminUrl}/metrics`)).body.text()).toContain('ficus_canary_weight{route="search"} 0');

  // A new release: the block changes.
  await reload(config(legacy, v2, block.replace('weight: 30', 'weight: 60')));
  expect(proxy.app.store.current.canaries[0]?.toRecord()).toMatchObject({ state: 'running', weight: 60 });
  expect(await onCanary(proxy)).toEqual(expected(60));
  expect(await (await request(`${proxy.app.adminUrl}/metrics`)).body.text()).toContain('ficus_canary_weight{route="search"} 60');
  const line = proxy.logs.find((l) => l.event === EVENT.canaryReadmitted);
  expect(line).toMatchObject({ level: 40, trigger: 'reload', reason: 'manual', toWeight: 60, message: 'a new canary block in the file ends the ejection (manual); starting at 60 %' });
  await proxy.app.audit.settled();
  const audit = (await readFile(join(proxy.dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(audit.filter((r) => r.kind === 'ejection' || r.kind === 'readmission').map((r) => [r.kind, r.trigger])).toEqual([
    ['ejection', 'admin'],
    ['readmission', 'reload'],
  ]);
  // The readmission is of the new file: its record names the new hash, as the reload's does.
  expect(audit.find((r) => r.kind === 'readmission')?.hash).toBe(proxy.app.store.current.snapshot.hash);
});

test('a route removed by a reload leaves no canary gauge behind', async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const proxy = await startProxy(config(legacy, v2, '{ to: search-v2, weight: 30 }'));
  expect(await (await request(`${proxy.app.adminUrl}/metrics`)).body.text()).toContain('ficus_canary_weight{route="search"} 30');
  await proxy.write(config(legacy, v2, '{ to: search-v2, weight: 30 }').replace(/ {2}- name: search\n(?: {4}.*\n)+/, ''));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(await (await request(`${proxy.app.adminUrl}/metrics`)).body.text()).not.toContain('ficus_canary_weight{');
});

test('renaming the route of an ejected canary (same block, same seed) starts it afresh, and says so as a readmission', async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const canary = '{ to: search-v2, weight: 50, seed: search, analysis: { interval: 1h } }';
  const proxy = await startProxy(config(legacy, v2, canary));
  const ejected = await request(`${proxy.app.adminUrl}/routes/search/eject`, { method: 'POST' });
  expect(ejected.statusCode).toBe(200);
  await ejected.body.dump();

  await proxy.write(config(legacy, v2, canary).replace('- name: search\n', '- name: search-api\n'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(await onCanary(proxy)).toEqual(expected(50));
  expect(proxy.logs.filter((l) => l.event === EVENT.canaryReadmitted)).toEqual([expect.objectContaining({ route: 'search-api' })]);
  await proxy.app.audit.settled();
  const kinds = (await readFile(join(proxy.dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n').map((l) => (JSON.parse(l) as { kind: string }).kind);
  expect(kinds).toContain('readmission');
});
