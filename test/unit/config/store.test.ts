import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test, vi } from 'vitest';
import { ConfigStore } from '../../../src/config/store.js';
import { systemClock } from '../../../src/observe/clock.js';
import { routesYaml, tempDir } from '../../helpers/proxy.js';
import { startUpstream } from '../../helpers/upstream.js';

const A = 'http://127.0.0.1:1';
const B = 'http://127.0.0.1:2';

/** Two services and a route to each; `over` replaces pieces of the default text. */
function config(over: { a?: string; b?: string; route?: string } = {}): string {
  return routesYaml(`services:
  a: ${over.a ?? `{ url: ${A} }`}
  b: ${over.b ?? `{ url: ${B} }`}
routes:
  - name: r
    match: { path: ${over.route ?? '/'} }
    to: a
  - name: s
    match: { path: /b }
    to: b
`);
}

async function openStore(text: string): Promise<{ store: ConfigStore; write: (text: string) => Promise<void>; remove: () => Promise<void> }> {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, text);
  const store = await ConfigStore.open(file, { clock: systemClock, random: Math.random, serviceEvents: () => ({ ejected() {}, returned() {}, panic() {} }) });
  onTestFinished(() => store.close());
  return { store, write: (next) => writeFile(file, next), remove: () => rm(file) };
}

test('a good file swaps in a new generation whole; the old one stays as it was', async () => {
  const { store, write } = await openStore(config());
  const before = store.current;
  await write(config({ route: '/new' }));
  const report = await store.reload('admin');
  expect(report).toMatchObject({ result: 'success', trigger: 'admin', hashBefore: before.snapshot.hash, issues: [] });
  expect(store.current).not.toBe(before);
  expect(store.current.snapshot.hash).toBe(report.hashAfter);
  expect(Object.isFrozen(before)).toBe(true);
  expect(before.snapshot.routes[0]?.conditions.map((c) => c.describe).join()).not.toContain('/new');
  expect(store.lastReload).toBe(report);
});

test.each([
  { name: 'a YAML syntax error', text: `${config()}  - name: [oops\n`, path: '' },
  { name: 'a schema error', text: config({ route: 'no-slash' }), path: 'routes.0.match.path' },
  { name: 'an unknown key', text: config().replace('to: a', 'to: a\n    tow: b'), path: 'routes.0.tow' },
  { name: 'a dangling reference', text: config().replace('to: b', 'to: nowhere'), path: 'routes.1.to' },
])('$name leaves the running generation untouched and is reported with its position', async ({ text, path }) => {
  const { store, write } = await openStore(config());
  const before = store.current;
  await write(text);
  const report = await store.reload('file');
  expect(report.result).toBe('failure');
  expect(store.current).toBe(before);
  expect(store.lastReload).toBe(report);
  expect(report.issues.length).toBeGreaterThan(0);
  for (const issue of report.issues) {
    expect(issue.file).toBe(store.file);
    expect(issue.line).toBeGreaterThan(1);
    expect(issue.col).toBeGreaterThanOrEqual(1);
  }
  expect(report.issues.map((i) => i.path)).toContain(path);
});

test('unchanged content is skipped by hash: no new generation', async () => {
  const { store, write } = await openStore(config());
  const before = store.current;
  await write(config());
  const report = await store.reload('signal');
  expect(report).toMatchObject({ result: 'unchanged', hashBefore: before.snapshot.hash, hashAfter: before.snapshot.hash });
  expect(store.current).toBe(before);
  expect((await store.reload('admin', true)).result).toBe('success');
  expect(store.current).not.toBe(before);
});

test('a file event for content already seen is not recorded again; putting the running file back is', async () => {
  const { store, write } = await openStore(config());
  await write('version: [');
  const failure = await store.reload('file');
  expect(failure.result).toBe('failure');
  // An editor's swap file beside the broken config: same content, nothing new to say.
  expect((await store.reload('file')).result).toBe('unchanged');
  expect(store.lastReload).toBe(failure);
  // Asked for explicitly, it is evaluated and reported again.
  expect((await store.reload('admin')).result).toBe('failure');
  await write(config());
  const back = await store.reload('file');
  expect(back).toMatchObject({ result: 'unchanged', issues: [] });
  expect(store.lastReload).toBe(back);
});

test('a file gone from its directory is reported once, not at every later event there (an audit log beside it)', async () => {
  const { store, write, remove } = await openStore(config());
  await remove();
  const failure = await store.reload('file');
  expect(failure).toMatchObject({ result: 'failure', issues: [{ message: 'cannot read file (ENOENT)' }] });
  // Each failure is audited, and the audit line is one more event in the directory.
  expect((await store.reload('file')).result).toBe('unchanged');
  expect(store.lastReload).toBe(failure);
  await write(config({ route: '/back' }));
  expect((await store.reload('file')).result).toBe('success');
});

test('concurrent reloads queue up instead of racing', async () => {
  const { store, write } = await openStore(config());
  const first = store.current.snapshot.hash;
  await write(config({ route: '/x' }));
  const reports = await Promise.all([store.reload('admin'), store.reload('signal'), store.reload('file')]);
  expect(reports.map((r) => r.result)).toEqual(['success', 'unchanged', 'unchanged']);
  expect(reports[0]?.hashBefore).toBe(first);
  expect(reports[1]?.hashBefore).toBe(reports[0]?.hashAfter);
});

test.each([
  { name: 'a route changes', next: { route: '/moved' }, aKept: true },
  { name: "the service's URL changes", next: { a: `{ url: ${A}/base }` }, aKept: false },
  { name: "the service's timeouts change", next: { a: `{ url: ${A}, timeouts: { response: 5s } }` }, aKept: false },
  { name: "the service's outlier threshold changes", next: { a: `{ url: ${A}, outlier: { consecutiveFailures: 2 } }` }, aKept: false },
  { name: 'the service becomes the legacy side', next: { a: `{ url: ${A}, legacy: true }` }, aKept: false },
])('when $name, runtime state carries over only for unchanged services', async ({ next, aKept }) => {
  const { store, write } = await openStore(config());
  const before = store.current.services;
  await write(config(next));
  expect((await store.reload('admin')).result).toBe('success');
  const after = store.current.services;
  expect(after.get('b')).toBe(before.get('b'));
  expect(after.get('a') === before.get('a')).toBe(aKept);
  // Whatever /status shows of a kept runtime's definition is what the file now says.
  expect(after.get('a')?.def).toEqual(store.current.snapshot.services.get('a'));
});

test("pools of removed endpoints are closed; pools still named stay open", async () => {
  const { store, write } = await openStore(config());
  const poolA = store.current.services.get('a')?.endpoints[0]?.pool;
  const poolB = store.current.services.get('b')?.endpoints[0]?.pool;
  await write(config({ a: `{ url: http://127.0.0.1:3 }` }));
  await store.reload('admin');
  expect(poolA?.closed).toBe(true);
  expect(poolB?.closed).toBe(false);
  // A changed definition with the same endpoint keeps the warm pool.
  const poolA3 = store.current.services.get('a')?.endpoints[0]?.pool;
  await write(config({ a: `{ url: http://127.0.0.1:3, legacy: true }` }));
  await store.reload('admin');
  expect(store.current.services.get('a')?.endpoints[0]?.pool).toBe(poolA3);
  expect(poolA3?.closed).toBe(false);
});

test('close() cuts a request that outlives the grace period', async () => {
  const hung = await startUpstream('hung', () => undefined);
  const { store } = await openStore(config({ a: `{ url: ${hung.url} }` }));
  const pool = store.current.services.get('a')?.endpoints[0]?.pool;
  const request = pool?.request({ path: '/', method: 'GET' });
  const outcome = request?.then(() => 'answered', () => 'cut');
  await expect.poll(() => hung.seen.length, { timeout: 2_000, interval: 10 }).toBe(1);
  const started = performance.now();
  await store.close(50);
  expect(performance.now() - started).toBeLessThan(1_000);
  expect(await outcome).toBe('cut');
  expect(pool?.destroyed).toBe(true);
});

test('the ejections of a service runtime a reload replaced end unannounced: no `returned` from a runtime no longer running', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  onTestFinished(() => void vi.useRealTimers());
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  const two = (timeout: string) => config({ a: `{ urls: [${A}, ${B}], outlier: { consecutiveFailures: 1 }, timeouts: { connect: ${timeout} } }` });
  await writeFile(file, two('1s'));
  const told: string[] = [];
  const store = await ConfigStore.open(file, {
    clock: { now: () => Date.now() },
    random: () => 0,
    serviceEvents: (service) => ({ ejected: () => told.push(`${service} ejected`), returned: () => told.push(`${service} returned`), panic() {} }),
  });
  onTestFinished(() => store.close());
  const old = store.current.services.get('a');
  old?.outlier.failure(old.endpoints[0] as (typeof old.endpoints)[number]);
  await writeFile(file, two('2s'));
  expect((await store.reload('admin')).result).toBe('success');
  expect(store.current.services.get('a')).not.toBe(old);
  vi.advanceTimersByTime(60_000);
  expect(told).toEqual(['a ejected']);
});
