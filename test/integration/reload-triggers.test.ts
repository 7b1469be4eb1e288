import { writeFileSync } from 'node:fs';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { startApp, type RunningApp } from '../../src/app.js';
import { memoryLogger, routesYaml, startProxy, tempDir } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** Small debounce; the poll is pushed out of the way so only the directory watch can pass. */
const WATCH = { debounceMs: 20, pollMs: 60_000 };

function config(a: Upstream, b: Upstream, to: 'a' | 'b'): string {
  return routesYaml(`services:\n  a: { url: ${a.url} }\n  b: { url: ${b.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: ${to}\n`);
}

async function servedBy(app: RunningApp): Promise<string> {
  const res = await request(`${app.proxyUrl}/who`);
  return ((await res.body.json()) as { name: string }).name;
}

async function lastReload(app: RunningApp): Promise<{ trigger: string; result: string; hashAfter: string }> {
  const res = await request(`${app.adminUrl}/status`);
  return ((await res.body.json()) as { config: { lastReload: { trigger: string; result: string; hashAfter: string } } }).config.lastReload;
}

/** Every sample line of ficus_config_info in a scrape. */
const configInfo = (scrape: string) => scrape.split('\n').filter((line) => line.startsWith('ficus_config_info{'));

const movesTo = (app: RunningApp, name: string) =>
  vi.waitFor(async () => expect(await servedBy(app)).toBe(name), { timeout: 5_000, interval: 20 });

test.each([
  { name: "an editor's rename-save", edit: (proxy: { write(text: string): Promise<void> }, _file: string, text: string) => proxy.write(text) },
  { name: 'an in-place write', edit: (_proxy: unknown, file: string, text: string) => writeFile(file, text) },
])('$name of the watched file reloads it, and again on the next edit', async ({ edit }) => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const proxy = await startProxy(config(a, b, 'a'), { watch: WATCH });
  expect(await servedBy(proxy.app)).toBe('a');
  await edit(proxy, proxy.file, config(a, b, 'b'));
  await movesTo(proxy.app, 'b');
  expect(await lastReload(proxy.app)).toMatchObject({ trigger: 'file', result: 'success' });
  await edit(proxy, proxy.file, config(a, b, 'a'));
  await movesTo(proxy.app, 'a');
});

test('a file beside routes.yaml written every 50 ms does not hold an edit back', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const proxy = await startProxy(config(a, b, 'a'), { watch: { debounceMs: 100, pollMs: 60_000 } });
  const busy = setInterval(() => void writeFile(join(proxy.dir, 'app.log'), String(Date.now())), 50);
  onTestFinished(() => clearInterval(busy));
  await proxy.write(config(a, b, 'b'));
  await vi.waitFor(async () => expect(await servedBy(proxy.app)).toBe('b'), { timeout: 2_000, interval: 20 });
});

test('a Kubernetes ConfigMap swap reloads the file, and again on the next swap', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const dir = await tempDir();
  let generation = 0;
  // What the kubelet does: a new timestamped dir, a ..data_tmp symlink to it renamed over ..data.
  const swap = async (text: string) => {
    const stamp = `..2024_06_01_12_00_0${generation++}.${process.pid}`;
    await mkdir(join(dir, stamp));
    await writeFile(join(dir, stamp, 'routes.yaml'), text);
    await symlink(stamp, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    if (generation > 1) await rm(join(dir, `..2024_06_01_12_00_0${generation - 2}.${process.pid}`), { recursive: true });
  };
  await swap(config(a, b, 'a'));
  await symlink('..data/routes.yaml', join(dir, 'routes.yaml'));
  const app = await startApp({ configFile: join(dir, 'routes.yaml'), logger: memoryLogger().logger, watch: WATCH });
  onTestFinished(() => app.drain());

  expect(await servedBy(app)).toBe('a');
  await swap(config(a, b, 'b'));
  await movesTo(app, 'b');
  await swap(config(a, b, 'a'));
  await movesTo(app, 'a');
  expect(await lastReload(app)).toMatchObject({ trigger: 'file', result: 'success' });
});

test('POST /reload reloads at once and answers with the report', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const proxy = await startProxy(config(a, b, 'a'));
  const hashBefore = proxy.app.store.current.snapshot.hash;
  expect(configInfo(await (await request(`${proxy.app.adminUrl}/metrics`)).body.text())).toEqual([`ficus_config_info{hash="${hashBefore}"} 1`]);
  await proxy.write(config(a, b, 'b'));
  expect(await servedBy(proxy.app)).toBe('a');
  const res = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
  expect(res.statusCode).toBe(200);
  const report = (await res.body.json()) as { result: string; trigger: string; hashAfter: string };
  expect(report).toMatchObject({ result: 'success', trigger: 'admin' });
  expect(await servedBy(proxy.app)).toBe('b');
  expect(await lastReload(proxy.app)).toMatchObject({ trigger: 'admin', result: 'success', hashAfter: report.hashAfter });

  const again = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
  expect(await again.body.json()).toMatchObject({ result: 'unchanged' });
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain('ficus_config_reloads_total{result="success"} 1');
  expect(metrics).toContain('ficus_config_reloads_total{result="unchanged"} 1');
  // A dashboard joins on config_info: a series left behind for the old hash would show two configs running.
  expect(report.hashAfter).not.toBe(hashBefore);
  expect(configInfo(metrics)).toEqual([`ficus_config_info{hash="${report.hashAfter}"} 1`]);
});

test('a burst of edits is debounced into one reload; rewriting the same content is skipped by hash', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const proxy = await startProxy(config(a, b, 'a'), { watch: { debounceMs: 250, pollMs: 60_000 } });
  const reloads = vi.spyOn(proxy.app.store, 'reload');
  const nthReload = async (n: number) => {
    await vi.waitFor(() => expect(reloads).toHaveBeenCalledTimes(n), { timeout: 5_000, interval: 10 });
    return (await reloads.mock.results[n - 1]?.value) as { result: string };
  };

  for (let i = 0; i < 5; i++) await proxy.write(config(a, b, i % 2 === 0 ? 'b' : 'a'));
  expect(await nthReload(1)).toMatchObject({ result: 'success' });
  expect(await servedBy(proxy.app)).toBe('b');
  const settled = await lastReload(proxy.app);

  await proxy.write(config(a, b, 'b'));
  expect(await nthReload(2)).toMatchObject({ result: 'unchanged' });

  expect(await lastReload(proxy.app)).toEqual(settled);
  const metrics = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain('ficus_config_reloads_total{result="success"} 1\n');
  expect(metrics).not.toContain('result="unchanged"');
  expect(proxy.logs.filter((l) => l.event === 'config.reloaded')).toHaveLength(1);
});

test('an edit made while the proxy starts, after it read the file and before its watch began, is applied', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  const withHook = (to: 'a' | 'b') => config(a, b, to).replace('services:', 'accessLog: ${env:ACCESS_LOG:-true}\nservices:');
  await writeFile(file, withHook('a'));
  // The first parse reads the environment: the file changes at that very moment, as a deploy
  // script's edit landing while the proxy starts would.
  let edited = false;
  const env = new Proxy({} as NodeJS.ProcessEnv, {
    get(_target, name) {
      if (name === 'ACCESS_LOG' && !edited) {
        edited = true;
        writeFileSync(file, withHook('b'));
      }
      return undefined;
    },
  });
  const app = await startApp({ configFile: file, logger: memoryLogger().logger, watch: WATCH, env });
  onTestFinished(() => app.drain());
  expect(edited).toBe(true);
  await movesTo(app, 'b');
});

test('a reload from a file event that throws (a fault of ficus, not of the file) is logged, and the next edit is still applied', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const proxy = await startProxy(config(a, b, 'a'), { watch: WATCH });
  vi.spyOn(proxy.app.store, 'reload').mockRejectedValueOnce(new Error('injected fault'));
  await proxy.write(config(a, b, 'b'));
  await vi.waitFor(() => expect(proxy.logs.find((l) => l.event === 'internal_error')).toMatchObject({ msg: 'the reload failed', err: { message: 'injected fault' } }), {
    timeout: 5_000,
    interval: 20,
  });
  await proxy.write(config(a, b, 'a'));
  await proxy.write(config(a, b, 'b'));
  await movesTo(proxy.app, 'b');
});
