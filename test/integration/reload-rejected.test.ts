import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const WATCH = { debounceMs: 20, pollMs: 60_000 };

function config(a: Upstream, b: Upstream, to: string): string {
  return routesYaml(`services:\n  a: { url: ${a.url} }\n  b: { url: ${b.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: ${to}\n`);
}

interface LastReload {
  trigger: string;
  result: string;
  errors: { file: string; line: number; col: number; path: string; message: string }[];
}

async function lastReload(app: RunningApp): Promise<LastReload> {
  return ((await (await request(`${app.adminUrl}/status`)).body.json()) as { config: { lastReload: LastReload } }).config.lastReload;
}

async function metrics(app: RunningApp): Promise<string> {
  return (await request(`${app.adminUrl}/metrics`)).body.text();
}

async function servedBy(app: RunningApp): Promise<string> {
  return ((await (await request(`${app.proxyUrl}/x`)).body.json()) as { name: string }).name;
}

const until = (check: () => Promise<void>) => vi.waitFor(check, { timeout: 5_000, interval: 20 });

test.each([
  { name: 'a YAML syntax error', breaks: (text: string) => text.replace('    to: a', '    to: a\n  tow: b'), at: '11:1', path: '' },
  { name: 'a schema error', breaks: (text: string) => text.replace('{ path: / }', '{ path: no-slash }'), at: '9:20', path: 'routes.0.match.path' },
  { name: 'an unknown key', breaks: (text: string) => text.replace('    to: a', '    to: a\n    tow: b'), at: '11:5', path: 'routes.0.tow' },
])('$name keeps the running config, is reported everywhere with file:line:col, and a good file recovers', async ({ breaks, at, path }) => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const proxy = await startProxy(config(a, b, 'a'), { watch: WATCH });
  const running = (await (await request(`${proxy.app.adminUrl}/status`)).body.json()) as { config: { hash: string } };

  await proxy.write(breaks(config(a, b, 'a')));
  await until(async () => expect((await lastReload(proxy.app)).result).toBe('failure'));

  expect(await servedBy(proxy.app)).toBe('a');
  expect(proxy.app.store.current.snapshot.hash).toBe(running.config.hash);
  const reported = await lastReload(proxy.app);
  expect(reported.trigger).toBe('file');
  expect(reported.errors).toContainEqual(expect.objectContaining({ file: proxy.file, path }));
  expect(reported.errors.map((e) => `${e.line}:${e.col}`)).toContain(at);
  const logged = proxy.logs.find((line) => line.event === 'config.reload_failed');
  expect(logged?.level).toBe(50);
  expect(logged?.errors).toContainEqual(expect.stringContaining(`${proxy.file}:${at}`));
  expect(logged?.msg).toContain(`${proxy.file}:${at}`);
  expect(await metrics(proxy.app)).toContain('ficus_config_last_reload_success 0');
  expect(await metrics(proxy.app)).toContain('ficus_config_reloads_total{result="failure"} 1');
  expect(await metrics(proxy.app)).toContain(`ficus_config_info{hash="${running.config.hash}"} 1`);
  const page = await (await request(`${proxy.app.adminUrl}/`)).body.text();
  expect(page).toContain(`${proxy.file}:${at}`);

  await proxy.write(config(a, b, 'b'));
  await until(async () => expect(await servedBy(proxy.app)).toBe('b'));
  expect(await lastReload(proxy.app)).toMatchObject({ result: 'success', errors: [] });
  const recovered = await metrics(proxy.app);
  expect(recovered).toContain('ficus_config_last_reload_success 1');
  expect(recovered).toContain('ficus_config_reloads_total{result="success"} 1');
});

test('putting the running file back after a bad edit also clears the failure', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const good = config(a, b, 'a');
  const proxy = await startProxy(good, { watch: WATCH });
  await proxy.write('version: [');
  await until(async () => expect((await lastReload(proxy.app)).result).toBe('failure'));
  expect(await metrics(proxy.app)).toContain('ficus_config_last_reload_success 0');

  await proxy.write(good);
  await until(async () => expect(await lastReload(proxy.app)).toMatchObject({ result: 'unchanged', errors: [] }));
  expect(await metrics(proxy.app)).toContain('ficus_config_last_reload_success 1');
});

test('POST /reload of a bad file answers 422 with the errors and changes nothing', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  const proxy = await startProxy(config(a, b, 'a'));
  const before = proxy.app.store.current;
  await proxy.write(config(a, b, 'nowhere'));
  const res = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
  expect(res.statusCode).toBe(422);
  expect(await res.body.json()).toMatchObject({ result: 'failure', issues: [{ path: 'routes.0.to', line: 10, col: 9 }] });
  expect(proxy.app.store.current).toBe(before);
  expect(await servedBy(proxy.app)).toBe('a');
});
