import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { lockForEdit } from '../../../src/config/edit-lock.js';
import { tempDir } from '../../helpers/proxy.js';

test('an edit that was presumed gone, and whose lock another took over, releases nothing of the other', async () => {
  const file = join(await tempDir(), 'routes.yaml');
  const lock = await lockForEdit(file);
  if (!('release' in lock)) throw new Error(lock.busy);
  // Another edit found this one's lock stale and took it: the lock now names that edit.
  await writeFile(`${file}.lock`, '1\n');
  await lock.release();
  expect(await readFile(`${file}.lock`, 'utf8')).toBe('1\n');
});

test('an edit releases its own lock', async () => {
  const file = join(await tempDir(), 'routes.yaml');
  const lock = await lockForEdit(file);
  if (!('release' in lock)) throw new Error(lock.busy);
  await lock.release();
  await expect(readFile(`${file}.lock`, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
});

test('a lock left empty for longer than writing one takes (its process died before writing its pid) is taken over', async () => {
  const file = join(await tempDir(), 'routes.yaml');
  await writeFile(`${file}.lock`, '');
  const past = new Date(Date.now() - 10_000);
  await utimes(`${file}.lock`, past, past);
  const lock = await lockForEdit(file);
  if (!('release' in lock)) throw new Error(lock.busy);
  expect(await readFile(`${file}.lock`, 'utf8')).toBe(`${process.pid}\n`);
  await lock.release();
});
