import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { besideConfig } from '../../../src/config/paths.js';
import { AuditLog, auditLine, MAX_LINE_BYTES, type AuditKind } from '../../../src/observe/audit.js';
import type { Clock } from '../../../src/observe/clock.js';
import { tempDir } from '../../helpers/proxy.js';

/* The audit log's file format and its promises: whole lines, in order, and a failure that never throws. */

const clock: Clock = { now: () => Date.UTC(2025, 0, 2, 3, 4, 5, 678) };

interface Failure {
  code: string | undefined;
  path: string;
  kind: AuditKind;
}

function auditTo(path: string | undefined) {
  const failures: Failure[] = [];
  const audit = new AuditLog(() => path, { clock, onError: (error, at, kind) => failures.push({ code: error.code, path: at, kind }) });
  return { audit, failures };
}

const readLines = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);

test('one JSON line per record: time (ISO 8601), kind, then the details', async () => {
  const file = join(await tempDir(), 'audit.jsonl');
  const { audit, failures } = auditTo(file);
  await expect(audit.record('cutover', { service: 'orders', from: 'blue', to: 'green' })).resolves.toBe(true);
  await expect(audit.record('edit', { command: 'weight', from: 5, to: 25 })).resolves.toBe(true);
  expect(await readFile(file, 'utf8')).toBe(
    '{"time":"2025-01-02T03:04:05.678Z","kind":"cutover","service":"orders","from":"blue","to":"green"}\n' +
      '{"time":"2025-01-02T03:04:05.678Z","kind":"edit","command":"weight","from":5,"to":25}\n',
  );
  expect(failures).toEqual([]);
});

test('records are appended: what the file held stays', async () => {
  const file = join(await tempDir(), 'audit.jsonl');
  await auditTo(file).audit.record('reload', { n: 1 });
  await auditTo(file).audit.record('reload', { n: 2 });
  expect((await readLines(file)).map((r) => r.n)).toEqual([1, 2]);
});

test('without an audit file nothing is written and nothing fails', async () => {
  const { audit, failures } = auditTo(undefined);
  await expect(audit.record('reload', {})).resolves.toBe(false);
  expect(failures).toEqual([]);
});

test('concurrent writers never tear a line, and each writer keeps its own order', async () => {
  const file = join(await tempDir(), 'audit.jsonl');
  const writers = 4;
  const each = 200;
  // Lines near the size limit make a torn write likely if appends were not atomic.
  const padding = 'x'.repeat(3_000);
  await Promise.all(
    Array.from({ length: writers }, (_, w) => {
      const { audit } = auditTo(file);
      return Promise.all(Array.from({ length: each }, (_, n) => audit.record('reload', { writer: w, n, padding })));
    }),
  );
  const records = await readLines(file);
  expect(records).toHaveLength(writers * each);
  for (let w = 0; w < writers; w++) {
    expect(records.filter((r) => r.writer === w).map((r) => r.n)).toEqual(Array.from({ length: each }, (_, n) => n));
  }
});

describe('a write that fails is reported, never thrown, and does not stop later records', () => {
  test.each([
    { name: 'a directory that does not exist', at: (dir: string) => join(dir, 'missing', 'audit.jsonl'), code: 'ENOENT' },
    { name: 'a path that is a directory', at: (dir: string) => dir, code: 'EISDIR' },
  ])('$name', async ({ at, code }) => {
    const path = at(await tempDir());
    const { audit, failures } = auditTo(path);
    await expect(audit.record('reload', { n: 1 })).resolves.toBe(false);
    await expect(audit.record('cutover', { n: 2 })).resolves.toBe(false);
    expect(failures).toEqual([
      { code, path, kind: 'reload' },
      { code, path, kind: 'cutover' },
    ]);
  });

  test('once the directory exists, records go through again', async () => {
    const dir = join(await tempDir(), 'later');
    const file = join(dir, 'audit.jsonl');
    const { audit } = auditTo(file);
    await expect(audit.record('reload', { n: 1 })).resolves.toBe(false);
    await mkdir(dir);
    await expect(audit.record('reload', { n: 2 })).resolves.toBe(true);
    expect((await readLines(file)).map((r) => r.n)).toEqual([2]);
  });

  test('an error handler that throws changes nothing', async () => {
    const path = join(await tempDir(), 'missing', 'audit.jsonl');
    const audit = new AuditLog(() => path, {
      clock,
      onError: () => {
        throw new Error('logger broke');
      },
    });
    await expect(audit.record('reload', {})).resolves.toBe(false);
    await expect(audit.settled()).resolves.toBeUndefined();
  });
});

describe('a record too long for one atomic line is shortened, and says so', () => {
  test('the longest list loses items from its end, counted', () => {
    const errors = Array.from({ length: 500 }, (_, i) => `routes.yaml:${i + 1}:1 routes.${i}.to: unknown service "s${i}"`);
    const line = auditLine({ time: 't', kind: 'reload', result: 'failure', errors });
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(line.endsWith('\n') && line.indexOf('\n') === line.length - 1).toBe(true);
    const record = JSON.parse(line) as { errors: string[]; errorsOmitted: number; truncated: boolean; result: string };
    expect(record).toMatchObject({ truncated: true, result: 'failure' });
    expect(record.errors).toEqual(errors.slice(0, record.errors.length));
    expect(record.errors.length + record.errorsOmitted).toBe(500);
  });

  test('a long string is cut', () => {
    const record = JSON.parse(auditLine({ time: 't', kind: 'edit', file: `/${'d/'.repeat(5_000)}routes.yaml` })) as { file: string; truncated: boolean };
    expect(record.truncated).toBe(true);
    expect(record.file.endsWith('…')).toBe(true);
  });

  test('a short record is left alone', () => {
    expect(auditLine({ time: 't', kind: 'edit', errors: ['a'] })).toBe('{"time":"t","kind":"edit","errors":["a"]}\n');
  });
});

test.each([
  { name: 'relative: beside the routes file, wherever ficus runs', file: '/etc/ficus/routes.yaml', log: 'audit.jsonl', expected: '/etc/ficus/audit.jsonl' },
  { name: 'relative with directories', file: '/etc/ficus/routes.yaml', log: '../log/audit.jsonl', expected: '/etc/log/audit.jsonl' },
  { name: 'absolute', file: '/etc/ficus/routes.yaml', log: '/var/log/ficus/audit.jsonl', expected: '/var/log/ficus/audit.jsonl' },
  { name: 'not set', file: '/etc/ficus/routes.yaml', log: undefined, expected: undefined },
  { name: 'empty (an unset ${env:…:-})', file: '/etc/ficus/routes.yaml', log: '', expected: undefined },
])('auditLog/stateFile paths: $name', ({ file, log, expected }) => {
  expect(besideConfig(file, log)).toBe(expected);
});
