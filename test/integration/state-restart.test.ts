import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { startApp } from '../../src/app.js';
import { EVENT } from '../../src/observe/log.js';
import { canaryYaml } from '../helpers/canary.js';
import { memoryLogger, routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/* Restarts with a state file after routes.yaml changed while ficus was down: what a reload of the same change would say and do. */

async function restart(file: string) {
  const { logger, lines } = memoryLogger();
  const app = await startApp({ configFile: file, logger, watch: false });
  onTestFinished(() => app.drain());
  return { app, lines };
}
const auditKinds = async (dir: string) => (await readFile(join(dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as { kind: string; trigger?: string; from?: string; to?: string });

test.each([
  ['its canary block changed', (y: string) => y.replace('weight: 50', 'weight: 60')],
  ['its route renamed', (y: string) => y.replace('- name: search\n', '- name: search-api\n')],
])('an ejected canary, %s while ficus was down, comes back running and says so as a readmission', async (_name, change) => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const yaml = canaryYaml(legacy.url, v2.url, '{ to: search-v2, weight: 50, analysis: { interval: 1h } }', { head: 'stateFile: state.json\nauditLog: audit.jsonl\n', rest: false });
  const proxy = await startProxy(yaml);
  expect((await fetch(`${proxy.app.adminUrl}/routes/search/eject`, { method: 'POST' })).status).toBe(200);
  await proxy.app.drain();
  await proxy.write(change(yaml));
  const again = await restart(proxy.file);
  await again.app.audit.settled();
  expect(again.lines.filter((l) => l.event === EVENT.canaryReadmitted)).toHaveLength(1);
  expect((await auditKinds(proxy.dir)).filter((r) => r.kind === 'readmission')).toMatchObject([{ trigger: 'start' }]);
});

test('renaming the route of an ejected canary with its default seed is a readmission on a reload too', async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const yaml = canaryYaml(legacy.url, v2.url, '{ to: search-v2, weight: 50, analysis: { interval: 1h } }', { head: 'auditLog: audit.jsonl\n' });
  const proxy = await startProxy(yaml);
  expect((await fetch(`${proxy.app.adminUrl}/routes/search/eject`, { method: 'POST' })).status).toBe(200);
  await proxy.write(yaml.replace('- name: search\n', '- name: search-api\n'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  await proxy.app.audit.settled();
  expect(proxy.logs.filter((l) => l.event === EVENT.canaryReadmitted)).toEqual([expect.objectContaining({ route: 'search-api' })]);
});

test('a rolled-back green fixed while ficus was down is watched after the restart, as a reload would watch it, and the cutover audited', async () => {
  const blue = await startUpstream('blue');
  const bad = await startUpstream('green', (_req, res) => { res.writeHead(500); res.end('boom'); });
  const fixed = await startUpstream('green-fixed');
  const yaml = (active: string, green: string) => routesYaml(`stateFile: state.json
auditLog: audit.jsonl
services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green} }
    active: ${active}
    guard: { window: 5m, consecutiveFailures: 3 }
routes:
  - { name: rest, match: { path: / }, to: orders }
`);
  const proxy = await startProxy(yaml('blue', bad.url));
  await proxy.write(yaml('green', bad.url));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  for (let i = 0; i < 3; i++) await (await fetch(`${proxy.app.proxyUrl}/x`)).arrayBuffer();
  await proxy.app.drain();
  await proxy.write(yaml('green', fixed.url));
  const again = await restart(proxy.file);
  const status = (await (await fetch(`${again.app.adminUrl}/status`)).json()) as { services: { name: string; state: string; active: string }[] };
  expect(status.services.find((s) => s.name === 'orders')).toMatchObject({ state: 'guarding', active: 'green' });
  await again.app.audit.settled();
  expect((await auditKinds(proxy.dir)).filter((r) => r.kind === 'cutover').at(-1)).toMatchObject({ trigger: 'start', from: 'blue', to: 'green' });
});

test('a canary record ficus did not write (a field missing) is ignored: /status keeps working', async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const proxy = await startProxy(canaryYaml(legacy.url, v2.url, '{ to: search-v2, weight: 50, analysis: { interval: 1h } }', { head: 'stateFile: state.json\n', rest: false }));
  await proxy.app.drain();
  const saved = JSON.parse(await readFile(join(proxy.dir, 'state.json'), 'utf8')) as { routes: Record<string, Record<string, unknown>> };
  await writeFile(join(proxy.dir, 'state.json'), JSON.stringify({ ...saved, routes: { search: { fingerprint: saved.routes.search?.fingerprint, state: 'running' } } }));
  const again = await restart(proxy.file);
  const res = await fetch(`${again.app.adminUrl}/status`);
  expect(res.status).toBe(200);
});

test("an operator's ejection is on disk, state file and audit log, by the time POST /routes/{name}/eject answers", async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('search-v2');
  const proxy = await startProxy(canaryYaml(legacy.url, v2.url, '{ to: search-v2, weight: 50, analysis: { interval: 1h } }', { head: 'stateFile: state.json\nauditLog: audit.jsonl\n', rest: false }));
  expect((await fetch(`${proxy.app.adminUrl}/routes/search/eject`, { method: 'POST' })).status).toBe(200);
  // Read at once: a crash now must not lose the decision the operator was told was made.
  const saved = JSON.parse(await readFile(join(proxy.dir, 'state.json'), 'utf8')) as { routes: Record<string, { state: string }> };
  expect(saved.routes.search?.state).toBe('ejected');
  expect((await auditKinds(proxy.dir)).map((r) => r.kind)).toContain('ejection');
});
