import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { loadState, saveState } from '../../../src/rollout/persist.js';
import { tempDir } from '../../helpers/proxy.js';

const CANARY = { fingerprint: '["search",{"to":"search-v2"}]', state: 'ejected', weight: 0, step: -1, message: 'x', since: 1 };

test('a state file that is a symbolic link is written where it points, and stays a link', async () => {
  const dir = await tempDir();
  await mkdir(join(dir, 'persist'));
  await symlink(join(dir, 'persist', 'state.json'), join(dir, 'state.json'));
  expect(await saveState(join(dir, 'state.json'), { routes: { search: CANARY }, services: {} })).toEqual({ ok: true });
  expect((await lstat(join(dir, 'state.json'))).isSymbolicLink()).toBe(true);
  expect(JSON.parse(await readFile(join(dir, 'persist', 'state.json'), 'utf8'))).toMatchObject({ routes: { search: { state: 'ejected' } } });
});

test('loadState is unchanged for a missing file', async () => {
  expect(await loadState(join(await tempDir(), 'nope.json'))).toMatchObject({ ok: true, missing: true });
});

test("a save cut short by a kill leaves a temporary file, which the next start removes; a running process's is left alone", async () => {
  const dir = await tempDir();
  const path = join(dir, 'state.json');
  // A pid no process has (the kernel's limit is lower), and this process's own.
  await writeFile(join(dir, '.state.json.4194305.0a1b2c3d4e5f.tmp'), '{"version":1,"rou');
  await writeFile(join(dir, `.state.json.${process.pid}.0a1b2c3d4e5f.tmp`), '{"version":1,"rou');
  await writeFile(join(dir, '.other.json.4194305.0a1b2c3d4e5f.tmp'), 'not ours');
  expect(await loadState(path)).toMatchObject({ ok: true, missing: true });
  expect((await readdir(dir)).sort()).toEqual(['.other.json.4194305.0a1b2c3d4e5f.tmp', `.state.json.${process.pid}.0a1b2c3d4e5f.tmp`]);
});

test('a symlinked state file that cannot be understood is kept aside where it points, and the link stays, for the next save to write through', async () => {
  const dir = await tempDir();
  await mkdir(join(dir, 'persist'));
  await writeFile(join(dir, 'persist', 'state.json'), '{ torn');
  await symlink(join(dir, 'persist', 'state.json'), join(dir, 'state.json'));
  expect(await loadState(join(dir, 'state.json'))).toMatchObject({ ok: false, problem: expect.stringContaining('kept as') });
  expect((await readdir(join(dir, 'persist'))).some((n) => n.startsWith('state.json.ignored-'))).toBe(true);
  expect((await lstat(join(dir, 'state.json'))).isSymbolicLink()).toBe(true);
  expect(await saveState(join(dir, 'state.json'), { routes: {}, services: {} })).toEqual({ ok: true });
  expect(JSON.parse(await readFile(join(dir, 'persist', 'state.json'), 'utf8'))).toMatchObject({ version: 1 });
});
