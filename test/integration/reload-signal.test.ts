import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import { startFicus } from '../helpers/child.js';
import { routesYaml, tempDir } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

// Runs the built CLI (`npm test` builds first; run `npm run build` before running this file alone).

function config(a: Upstream, b: Upstream, to: string): string {
  return routesYaml(`services:\n  a: { url: ${a.url} }\n  b: { url: ${b.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: ${to}\n`);
}

test('SIGHUP reloads the file; a bad file on SIGHUP keeps the running config', async () => {
  const [a, b] = [await startUpstream('a'), await startUpstream('b')];
  // The file is reached through a symlink from another directory, so the directory watch cannot
  // see edits to it: only the signal can make this reload happen at once.
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
