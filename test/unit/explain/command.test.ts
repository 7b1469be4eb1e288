import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runExplain } from '../../../src/explain/command.js';
import { tempDir } from '../../helpers/proxy.js';

const FILE = `version: 1
identity: { header: x-user-id }
services:
  legacy: { url: http://127.0.0.1:3001 }
  catalog-v2: { url: http://127.0.0.1:3101 }
  orders:
    blue: { url: http://127.0.0.1:3201 }
    green: { url: http://127.0.0.1:3202 }
    active: green
cohorts:
  staff: { users: [alice] }
  beta: { header: { name: x-beta, value: "1" } }
routes:
  - { name: catalog-staff, match: { path: /catalog, cohort: staff }, to: catalog-v2 }
  - { name: catalog-beta, match: { path: /catalog, cohort: beta }, to: catalog-v2 }
  - { name: orders, match: { path: /orders }, to: orders }
  - { name: rest, match: { path: / }, to: legacy }
`;

async function explainCli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, FILE);
  let stdout = '';
  let stderr = '';
  const args = argv.map((arg) => arg.replace('$FILE', file));
  const code = await runExplain(args, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: { ...env, FICUS_CONFIG: env.FICUS_CONFIG?.replace('$FILE', file) } });
  return { code, stdout, stderr, file };
}

test.each([
  { argv: ['GET', '/catalog/1', '-u', 'alice', '-c', '$FILE'], lines: ['route: catalog-staff', 'service: catalog-v2', 'side: stable', 'user: alice (header x-user-id)'] },
  { argv: ['get', '/catalog', '-H', 'X-Beta: 1', '--config', '$FILE'], lines: ['request: GET /catalog', 'route: catalog-beta', 'cohorts: beta'] },
  { argv: ['GET', '/catalog', '-c', '$FILE'], lines: ['route: rest', 'service: legacy', 'skipped: catalog-staff (needs caller in cohort staff)'] },
  { argv: ['GET', '/orders', '-c', '$FILE'], lines: ['route: orders', 'service: orders', 'color: green', 'endpoints: http://127.0.0.1:3202'] },
])('ficus explain $argv', async ({ argv, lines }) => {
  const { code, stdout, stderr } = await explainCli(argv);
  expect(stderr).toBe('');
  expect(code).toBe(0);
  expect(stdout.trimEnd().split('\n')).toEqual(expect.arrayContaining(lines));
});

test('--json prints the same report as JSON', async () => {
  const text = await explainCli(['GET', '/orders', '-c', '$FILE']);
  const json = await explainCli(['GET', '/orders', '-c', '$FILE', '--json']);
  const report = JSON.parse(json.stdout) as Record<string, unknown>;
  expect(report).toMatchObject({ route: 'orders', service: 'orders', side: 'stable', color: 'green' });
  for (const key of ['route', 'service', 'side', 'color']) expect(text.stdout).toContain(`${key}: ${String(report[key])}\n`);
});

test('without -c the file is $FICUS_CONFIG', async () => {
  const { code, stdout } = await explainCli(['GET', '/orders'], { FICUS_CONFIG: '$FILE' });
  expect(code).toBe(0);
  expect(stdout).toContain('route: orders\n');
});

test.each([
  { argv: ['GET'], error: /give a METHOD and a URL/ },
  { argv: ['GET', '/', '/x'], error: /give a METHOD and a URL/ },
  { argv: ['GET', '/', '--verbose'], error: /unknown option "--verbose"/ },
  { argv: ['GET', '/', '-u'], error: /-u needs a value/ },
  { argv: ['GET', '/', '-H', 'no-colon'], error: /-H takes 'name: value'/ },
  { argv: ['G3T', '/'], error: /not an HTTP method/ },
])('misuse $argv exits 2 with the usage', async ({ argv, error }) => {
  const { code, stdout, stderr } = await explainCli(['-c', '$FILE', ...argv]);
  expect(code).toBe(2);
  expect(stdout).toBe('');
  expect(stderr).toMatch(error);
  expect(stderr).toContain('usage: ficus explain METHOD URL');
});

test('an invalid file exits 1 with every error located, and explains nothing', async () => {
  const dir = await tempDir();
  const file = join(dir, 'bad.yaml');
  await writeFile(file, FILE.replace('to: legacy', 'to: nowhere').replace('users: [alice]', 'users: alice'));
  let stdout = '';
  let stderr = '';
  const code = await runExplain(['GET', '/', '-c', file], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: {} });
  expect(code).toBe(1);
  expect(stdout).toBe('');
  expect(stderr.trimEnd().split('\n')).toHaveLength(2);
  expect(stderr).toContain(`${file}:`);
});

test.each([
  { method: 'GET', shadow: 'shadow: catalog-v2 (10 % of such requests are copied and compared)', note: undefined },
  { method: 'POST', shadow: undefined, note: 'note: shadow: POST is never copied to catalog-v2 (only GET, HEAD)' },
])('explain says whether a $method request may be copied to the route’s shadow', async ({ method, shadow, note }) => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, FILE.replace('  - { name: rest,', '  - { name: invoices, match: { path: /invoices }, to: legacy, shadow: { to: catalog-v2, percent: 10, compare: true } }\n  - { name: rest,'));
  let stdout = '';
  const code = await runExplain([method, '/invoices', '-c', file], { stdout: (t) => void (stdout += t), stderr: () => undefined, env: {} });
  expect(code).toBe(0);
  const lines = stdout.split('\n');
  expect(lines).toContain('route: invoices');
  if (shadow === undefined) expect(lines.some((l) => l.startsWith('shadow:'))).toBe(false);
  else expect(lines).toContain(shadow);
  if (note !== undefined) expect(lines).toContain(note);
});
