import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { formatIssue } from '../../../src/config/issues.js';
import { parseRoutes } from '../../../src/config/load.js';

/**
 * test/fixtures/invalid/X.yaml is reported exactly as X.expected says, every line at once, in
 * the `file:line:col key.path: message` form `ficus check` prints (the file named as given,
 * relative to the repository). test/fixtures/valid/*.yaml load and compile.
 */
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = (kind: string) => readdirSync(join(root, 'test/fixtures', kind)).filter((name) => name.endsWith('.yaml')).sort();

/** Fixtures use FICUS_FIXTURE_* variables; none is set, so defaults apply and missing ones are errors. */
const env = {};

describe('invalid fixtures report every expected error', () => {
  test.each(fixtures('invalid'))('%s', (name) => {
    const file = `test/fixtures/invalid/${name}`;
    const expected = readFileSync(join(root, file.replace(/\.yaml$/, '.expected')), 'utf8').trimEnd().split('\n');
    const loaded = parseRoutes(readFileSync(join(root, file), 'utf8'), file, env);
    expect(loaded.ok).toBe(false);
    expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual(expected);
  });

  test('the many-errors fixture holds at least five different kinds of mistake', () => {
    const expected = readFileSync(join(root, 'test/fixtures/invalid/many-errors.expected'), 'utf8');
    const kinds = ['unknown key', 'unknown service', 'duplicate route name', 'not set', 'invalid regular expression', 'CIDR', 'normalized', 'credentials'];
    expect(kinds.filter((kind) => expected.includes(kind))).toEqual(kinds);
  });
});

describe('valid fixtures load and compile', () => {
  test.each(fixtures('valid'))('%s', (name) => {
    const file = `test/fixtures/valid/${name}`;
    const loaded = parseRoutes(readFileSync(join(root, file), 'utf8'), file, env);
    expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([]);
    if (loaded.ok) expect(compile(loaded.config, file, loaded.hash).routes.length).toBe(loaded.config.routes.length);
  });
});

test("the repository's own routes.yaml is valid", () => {
  const loaded = parseRoutes(readFileSync(join(root, 'routes.yaml'), 'utf8'), 'routes.yaml', env);
  expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([]);
});
