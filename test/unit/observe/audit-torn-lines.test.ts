import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { AuditLog } from '../../../src/observe/audit.js';
import { tempDir } from '../../helpers/proxy.js';

test('a line left torn (a write cut short by a full disk) does not swallow the next record', async () => {
  const file = join(await tempDir(), 'audit.jsonl');
  // What a write cut short by ENOSPC leaves behind: a whole line, then part of one.
  await writeFile(file, '{"time":"t","kind":"reload"}\n{"time":"t","kind":"ejec');
  const audit = new AuditLog(() => file, { clock: { now: () => 0 }, onError: () => undefined });
  expect(await audit.record('ejection', { route: 'search' })).toBe(true);
  const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  expect(lines).toHaveLength(3);
  expect(JSON.parse(lines[2] as string)).toMatchObject({ kind: 'ejection', route: 'search' });
});
