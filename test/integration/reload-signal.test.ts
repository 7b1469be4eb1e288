import { spawn } from 'node:child_process';
import { symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { BIN, startFicus } from '../helpers/child.js';
import { routesYaml, tempDir } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

// Runs the built CLI (`npm test` builds first; run `npm run build` before running this file alone).

function config(a: Upstream, b: Upstream, to: string): string {
  return routesYaml(`services:\n  a: { url: ${a.url} }\n  b: { url: ${b.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: ${to}\n`);
}

test('SIGHUP reloads the file; a bad file on SIGHUP keeps the running config', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  // The file is reached through a symlink from another directory. The watch follows the link and
  // sees the edit too, but only after its debounce (100 ms): the signal's reload comes first, and
  // the watch's then finds that content loaded already (an unchanged file reload is not recorded).
  const [linkDir, realDir] = [await tempDir(), await tempDir()];
  await writeFile(join(realDir, 'routes.yaml'), config(a, b, 'a'));
  await symlink(join(realDir, 'routes.yaml'), join(linkDir, 'routes.yaml'));
  const ficus = await startFicus(join(linkDir, 'routes.yaml'));
  const servedBy = async () => ((await (await request(`${ficus.proxyUrl}/`)).body.json()) as { name: string }).name;
  const status = async () => (await (await request(`${ficus.adminUrl}/status`)).body.json()) as { config: { hash: string; lastReload: { trigger: string; result: string; errors: unknown[] } } };
  expect(await servedBy()).toBe('a');

  await writeFile(join(realDir, 'routes.yaml'), config(a, b, 'b'));
  ficus.child.kill('SIGHUP');
  await vi.waitFor(async () => expect((await status()).config.lastReload).toMatchObject({ trigger: 'signal', result: 'success' }), { timeout: 5_000, interval: 20 });
  expect(await servedBy()).toBe('b');

  await writeFile(join(realDir, 'routes.yaml'), config(a, b, 'nowhere'));
  ficus.child.kill('SIGHUP');
  await vi.waitFor(async () => expect((await status()).config.lastReload).toMatchObject({ trigger: 'signal', result: 'failure' }), { timeout: 5_000, interval: 20 });
  expect((await status()).config.lastReload.errors).toEqual([expect.objectContaining({ path: 'routes.0.to', line: 10, col: 9 })]);
  expect(await servedBy()).toBe('b');
  const metrics = await (await request(`${ficus.adminUrl}/metrics`)).body.text();
  expect(metrics).toContain('ficus_config_last_reload_success 0');
  expect(ficus.child.exitCode).toBeNull();
  // Log lines are written in batches; on a quiet proxy the periodic flush still brings the
  // rejection to the operator's log while the process runs, not only at exit.
  await vi.waitFor(() => expect(ficus.lines.some((l) => l.event === 'config.reload_failed')).toBe(true), { timeout: 3_000, interval: 20 });
});

test('a SIGHUP reload that throws (a fault of ficus, injected here) is reported on stderr and the proxy runs on', async () => {
  const a = await startUpstream('a');
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, config(a, a, 'a'));
  // Loaded before ficus: the store's reload rejects when a signal asks for it.
  const store = pathToFileURL(join(dirname(BIN), '..', 'dist', 'config', 'store.js')).href;
  const fault = `import { ConfigStore } from ${JSON.stringify(store)};
const reload = ConfigStore.prototype.reload;
ConfigStore.prototype.reload = function (trigger, force) { return trigger === 'signal' ? Promise.reject(new Error('injected fault')) : reload.call(this, trigger, force); };`;
  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(fault)}`, BIN, 'start', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const adminUrl = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = JSON.parse(text) as { event?: string; admin?: string };
      if (line.event === 'started') resolve(String(line.admin));
    });
    child.once('exit', () => reject(new Error(`ficus exited before starting: ${stderr}`)));
  });

  child.kill('SIGHUP');
  await vi.waitFor(() => expect(stderr).toContain('ficus: the reload failed: injected fault\n'), { timeout: 5_000, interval: 20 });
  const status = await request(`${adminUrl}/status`);
  expect(status.statusCode).toBe(200);
  await status.body.dump();
  expect(child.exitCode).toBeNull();
});

test('a large file is read and checked off the proxy thread: requests keep being answered while a reload of 4,000 routes is checked', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  const large = (extra: string) => {
    let routes = `  - { name: ping, match: { exact: /ping }, respond: { status: 200, body: pong } }\n${extra}`;
    for (let i = 0; i < 4_000; i++) routes += `  - name: r${i}\n    match: { path: /svc${i}/api, methods: [GET, POST], headers: { x-tenant: t${i} } }\n    respond: { status: 204 }\n`;
    return routesYaml(`services: {}\nroutes:\n${routes}`);
  };
  await writeFile(file, large(''));
  const ficus = await startFicus(file);
  const ping = async () => (await (await request(`${ficus.proxyUrl}/ping`)).body.text()) === 'pong';
  const added = async () => {
    const res = await request(`${ficus.proxyUrl}/added`);
    await res.body.dump();
    return res.statusCode === 201;
  };
  expect(await ping()).toBe(true);

  await writeFile(file, large('  - { name: added, match: { exact: /added }, respond: { status: 201 } }\n'));
  ficus.child.kill('SIGHUP');
  // Parsed on the proxy's own thread, the file held every request until it was checked: only
  // the few sent before the parse began were answered before the reload had ended.
  let answered = 0;
  // The watch may see the write and reload first (the signal's reload then finds it loaded):
  // either way, the reload has ended once the added route answers.
  do for (let i = 0; i < 10; i++) if (await ping()) answered++;
  while (!(await added()));
  expect(answered).toBeGreaterThanOrEqual(100);
});
