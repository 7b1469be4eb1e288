import { execFile } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { editRoutesFile } from '../../src/config/edit.js';
import { parseRoutes } from '../../src/config/load.js';
import { routesYaml, tempDir } from '../helpers/proxy.js';
import { BIN } from '../helpers/child.js';

/*
 * `ficus cutover | weight | toggle` as operators run them: bin/ficus.js in a child process
 * (needs `npm run build`) editing a real routes file in a temp directory.
 */


interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function ficus(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<Run> {
  return new Promise((resolve) => {
    const env = { PATH: process.env.PATH ?? '', ...options.env };
    execFile(process.execPath, [BIN, ...args], { cwd: options.cwd, env, timeout: 10_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

const ROUTES = routesYaml(`# the migration, step by step
services:
  legacy: { url: http://127.0.0.1:3001 }     # the monolith
  search-v2: { url: http://127.0.0.1:3301 }
  orders:
    blue:  { url: http://127.0.0.1:3201 }
    green: { url: http://127.0.0.1:3202 }
    active: blue                             # cut over with ficus cutover
toggles:
  invoices: { enabled: true }                # kill switch
routes:
  - name: search
    match: { path: /search }
    to: legacy
    canary: { to: search-v2, weight: 5 }    # 5 % of users
  - name: orders
    match: { path: /orders }
    to: orders
  - name: rest
    match: { path: / }
    to: legacy
`);

async function routesFile(text = ROUTES, name = 'routes.yaml'): Promise<{ dir: string; file: string }> {
  const dir = await tempDir();
  const file = join(dir, name);
  await writeFile(file, text);
  return { dir, file };
}

describe('an edit changes one line, prints it as a diff, and keeps the rest', () => {
  test.each([
    { args: ['cutover', 'orders', 'green'], line: 11, from: 'active: blue ', to: 'active: green ', diff: 'routes.yaml:11: active: blue → green' },
    { args: ['weight', 'search', '25'], line: 18, from: 'weight: 5 }', to: 'weight: 25 }', diff: 'routes.yaml:18: weight: 5 → 25' },
    { args: ['toggle', 'invoices', 'off'], line: 13, from: 'enabled: true', to: 'enabled: false', diff: 'routes.yaml:13: enabled: true → false' },
    { args: ['toggle', 'invoices', '10'], line: 13, from: 'enabled: true }', to: 'enabled: true, percent: 10 }', diff: 'routes.yaml:13: percent: (not set) → 10' },
  ])('ficus $args', async ({ args, line, from, to, diff }) => {
    const { dir, file } = await routesFile();
    await chmod(file, 0o640);
    const run = await ficus(args, { cwd: dir });
    expect(run).toEqual({ code: 0, stdout: `${diff}\n`, stderr: '' });
    const expected = ROUTES.split('\n');
    const was = expected[line - 1] ?? '';
    // The end-of-line comment keeps its column: the spaces before it take up the change of length.
    expected[line - 1] = was.replace(from, to).replace(/ +#/, (spaces) => `${' '.repeat(Math.max(1, spaces.length - 1 - (to.length - from.length)))}#`);
    expect(expected[line - 1]?.indexOf('#')).toBe(was.indexOf('#'));
    expect(await readFile(file, 'utf8')).toBe(expected.join('\n'));
    // Replaced by rename, keeping the mode; no temp file left behind.
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect(await readdir(dir)).toEqual(['routes.yaml']);
  });

  test('asking for what is already so changes nothing and says so', async () => {
    const { dir, file } = await routesFile();
    const before = await stat(file);
    const run = await ficus(['cutover', 'orders', 'blue'], { cwd: dir });
    expect(run).toEqual({ code: 0, stdout: 'routes.yaml:11: active is already blue; nothing to change\n', stderr: '' });
    expect((await stat(file)).ino).toBe(before.ino);
  });
});

describe('refused: exit 1, a clear message, the file untouched', () => {
  test.each([
    { args: ['cutover', 'ordrs', 'green'], says: 'no service named "ordrs" (services: legacy, search-v2, orders)' },
    { args: ['cutover', 'legacy', 'green'], says: 'service "legacy" is not a blue/green service' },
    { args: ['cutover', 'orders', 'purple'], says: 'the colour must be "blue" or "green", not "purple"' },
    { args: ['weight', 'nope', '10'], says: 'no route named "nope" (routes: search, orders, rest)' },
    { args: ['weight', 'orders', '10'], says: 'route "orders" has no canary' },
    { args: ['weight', 'search', '100.5'], says: 'the weight must be a number from 0 to 100, not "100.5"' },
    { args: ['toggle', 'invoice', 'off'], says: 'no toggle named "invoice" (toggles: invoices)' },
    { args: ['toggle', 'invoices', '250'], says: 'must be a number from 0 to 100, not "250"' },
  ])('ficus $args', async ({ args, says }) => {
    const { dir, file } = await routesFile();
    const before = await stat(file);
    const run = await ficus(args, { cwd: dir });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^ficus: [^\n]+\n$/);
    expect(run.stderr).toContain(says);
    expect(await readFile(file, 'utf8')).toBe(ROUTES);
    expect((await stat(file)).ino).toBe(before.ino);
  });

  test('a result that would be invalid: every error with its position, then why nothing was written', async () => {
    const broken = ROUTES.replace('  - name: rest\n    match: { path: / }\n    to: legacy', '  - name: rest\n    match: { path: / }\n    to: legasy');
    const { dir, file } = await routesFile(broken);
    const run = await ficus(['cutover', 'orders', 'green'], { cwd: dir });
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: 'routes.yaml:24:9 routes.2.to: unknown service "legasy"\nficus: the edited routes.yaml would be invalid, so it was not written\n',
    });
    expect(await readFile(file, 'utf8')).toBe(broken);
  });

  test('a symbolic link (a Kubernetes ConfigMap mount) is not edited in place', async () => {
    const { dir, file } = await routesFile(ROUTES, 'real.yaml');
    await symlink('real.yaml', join(dir, 'routes.yaml'));
    const run = await ficus(['cutover', 'orders', 'green'], { cwd: dir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^ficus: routes\.yaml is a symbolic link \(to .*real\.yaml\), as a Kubernetes ConfigMap mount is, and cannot be edited in place/);
    expect(run.stderr).toContain('-c');
    expect(await readFile(file, 'utf8')).toBe(ROUTES);
    // Named directly, the real file is the operator's to edit.
    expect((await ficus(['cutover', 'orders', 'green', '-c', 'real.yaml'], { cwd: dir })).code).toBe(0);
  });

  test('a file that does not exist', async () => {
    const dir = await tempDir();
    const run = await ficus(['toggle', 'invoices', 'off'], { cwd: dir });
    expect(run).toEqual({ code: 1, stdout: '', stderr: 'ficus: cannot read routes.yaml (ENOENT)\n' });
  });
});

test.each([
  { args: ['cutover', 'orders'], says: 'usage: ficus cutover SERVICE blue|green [-c FILE]' },
  { args: ['weight', 'search', '5', 'extra'], says: 'usage: ficus weight ROUTE PCT [-c FILE]' },
  { args: ['toggle'], says: 'usage: ficus toggle NAME on|off|PCT [-c FILE]' },
  { args: ['toggle', 'invoices', 'off', '--force'], says: 'unknown option "--force" for "ficus toggle"' },
])('ficus $args is a usage error: exit 2', async ({ args, says }) => {
  const { dir } = await routesFile();
  const run = await ficus(args, { cwd: dir });
  expect(run.code).toBe(2);
  expect(run.stderr).toContain(says);
});

test.each([
  { name: '-c FILE', args: ['-c', 'chosen.yaml'], env: { FICUS_CONFIG: 'other.yaml' } },
  { name: '--config=FILE', args: ['--config=chosen.yaml'], env: { FICUS_CONFIG: 'other.yaml' } },
  { name: '$FICUS_CONFIG before ./routes.yaml', args: [], env: { FICUS_CONFIG: 'chosen.yaml' } },
])('the file edited is $name', async ({ args, env }) => {
  const { dir } = await routesFile(ROUTES, 'routes.yaml');
  for (const name of ['chosen.yaml', 'other.yaml']) await writeFile(join(dir, name), ROUTES);
  const run = await ficus(['toggle', 'invoices', 'off', ...args], { cwd: dir, env });
  expect(run.stdout).toBe('chosen.yaml:13: enabled: true → false\n');
  for (const name of ['routes.yaml', 'other.yaml']) expect(await readFile(join(dir, name), 'utf8')).toBe(ROUTES);
});

test('an edit is recorded in the audit log the file names, relative to the file', async () => {
  const { dir, file } = await routesFile(`auditLog: audit/ficus.jsonl\n${ROUTES}`);
  await mkdir(join(dir, 'audit'));
  const elsewhere = await tempDir();
  expect((await ficus(['weight', 'search', '12.5', '-c', file], { cwd: elsewhere })).code).toBe(0);
  expect((await ficus(['cutover', 'orders', 'green', '-c', file], { cwd: elsewhere })).code).toBe(0);
  const lines = (await readFile(join(dir, 'audit', 'ficus.jsonl'), 'utf8')).trimEnd().split('\n');
  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(records).toEqual([
    expect.objectContaining({ kind: 'edit', command: 'weight', target: 'search', key: 'routes.0.canary.weight', from: 5, to: 12.5, file }),
    expect.objectContaining({ kind: 'edit', command: 'cutover', target: 'orders', key: 'services.orders.active', from: 'blue', to: 'green', file }),
  ]);
  for (const record of records) expect(new Date(record.time as string).toISOString()).toBe(record.time);
});

test('an audit log that cannot be written: the edit stands, with a warning', async () => {
  const { dir, file } = await routesFile(`auditLog: missing/audit.jsonl\n${ROUTES}`);
  const run = await ficus(['toggle', 'invoices', 'off'], { cwd: dir });
  expect(run.code).toBe(0);
  expect(run.stdout).toBe('routes.yaml:14: enabled: true → false\n');
  expect(run.stderr).toMatch(/^ficus: warning: could not append to the audit log .*missing\/audit\.jsonl \(ENOENT\)\n$/);
  expect(await readFile(file, 'utf8')).toContain('enabled: false');
});

test('a reader never sees half a file, however often the file is edited', async () => {
  const { file } = await routesFile();
  let stop = false;
  let reads = 0;
  const bad: string[] = [];
  // Reads as fast as it can, as a watching proxy would on every event.
  const reader = (async () => {
    while (!stop) {
      const text = await readFile(file, 'utf8');
      reads++;
      const parsed = parseRoutes(text, file, {});
      if (!parsed.ok) bad.push(text);
    }
  })();
  for (let i = 0; i < 60; i++) {
    const outcome = await editRoutesFile(file, { command: 'toggle', target: 'invoices', value: String(i % 2 === 0 ? 40 + i : 20 + i) }, {});
    expect(outcome.result).toBe('changed');
  }
  stop = true;
  await reader;
  expect(reads).toBeGreaterThan(10);
  expect(bad).toEqual([]);
});

test('edits started together take turns: every one lands, none is undone by another', async () => {
  const { dir, file } = await routesFile();
  for (let round = 0; round < 5; round++) {
    const weight = String(10 + round);
    const [toggle, cutover, canary] = await Promise.all([
      ficus(['toggle', 'invoices', round % 2 === 0 ? 'off' : 'on', '-c', file], { cwd: dir }),
      ficus(['cutover', 'orders', round % 2 === 0 ? 'green' : 'blue', '-c', file], { cwd: dir }),
      ficus(['weight', 'search', weight, '-c', file], { cwd: dir }),
    ]);
    expect([toggle.code, cutover.code, canary.code], toggle.stderr + cutover.stderr + canary.stderr).toEqual([0, 0, 0]);
    const text = await readFile(file, 'utf8');
    expect(text).toContain(`invoices: { enabled: ${round % 2 === 0 ? 'false' : 'true'} }`);
    expect(text).toContain(`active: ${round % 2 === 0 ? 'green' : 'blue'}`);
    expect(text).toContain(`weight: ${weight} }`);
  }
  expect(await readdir(dir)).toEqual(['routes.yaml']);
});

test('a lock left by an edit whose process is gone is taken over', async () => {
  const { dir, file } = await routesFile();
  // A pid no process has: the kernel's pid space ends well below it.
  await writeFile(`${file}.lock`, '2147483646\n');
  const run = await ficus(['toggle', 'invoices', 'off', '-c', file], { cwd: dir });
  expect(run.code, run.stderr).toBe(0);
  expect(await readdir(dir)).toEqual(['routes.yaml']);
});

test('a routes file its owner made read-only is not replaced, though its directory would allow it', async () => {
  const { dir, file } = await routesFile();
  await chmod(file, 0o444);
  await chmod(dir, 0o777);
  // Root may write any file: the edit runs as an unprivileged user then, as an operator would.
  const asOperator = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const run = await new Promise<Run>((resolve) => {
    execFile(process.execPath, [BIN, 'toggle', 'invoices', 'off', '-c', file], { cwd: dir, env: { PATH: process.env.PATH ?? '' }, timeout: 10_000, ...asOperator }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
  expect(run.code).toBe(1);
  expect(run.stderr).toContain(`cannot write ${file} (EACCES)`);
  expect(await readFile(file, 'utf8')).toBe(ROUTES);
});

test('a percentage on a toggle switched off says that the toggle stays off, and how to switch it on', async () => {
  const { dir, file } = await routesFile();
  await writeFile(file, ROUTES.replace('invoices: { enabled: true }', 'invoices: { enabled: false }'));
  const run = await ficus(['toggle', 'invoices', '30', '-c', file], { cwd: dir });
  expect(run.code, run.stderr).toBe(0);
  expect(run.stdout).toContain('note: toggle invoices is switched off (enabled: false), so it stays off for everyone; `ficus toggle invoices on` switches it on for 30 % of users');
});
