import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { routesJsonSchema } from '../../src/config/schema.js';
import { tempDir } from '../helpers/proxy.js';
import { BIN } from '../helpers/child.js';

/* `ficus check` and `ficus schema` as users and scripts run them: bin/ficus.js in a child process (needs `npm run build`). */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function ficus(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

const invalid = readdirSync(join(ROOT, 'test/fixtures/invalid')).filter((name) => name.endsWith('.yaml'));

describe('an invalid file: every error on its own line, exit 1', () => {
  test.each(invalid)('%s', async (name) => {
    const file = `test/fixtures/invalid/${name}`;
    const run = await ficus(['check', file]);
    expect(run.stdout).toBe(readFileSync(join(ROOT, file.replace(/\.yaml$/, '.expected')), 'utf8'));
    for (const line of run.stdout.trimEnd().split('\n')) expect(line).toMatch(/^test\/fixtures\/invalid\/[\w-]+\.yaml:\d+:\d+ \S.*$/);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('');
  });

  test('the file is named as given, absolute or relative', async () => {
    for (const file of [join(ROOT, 'test/fixtures/invalid/yaml-syntax.yaml'), './test/fixtures/invalid/yaml-syntax.yaml']) {
      const run = await ficus(['check', file]);
      expect(run.stdout).toBe(`${file}:7:20 YAML syntax error: quoted string is never closed\n`);
      expect(run.code).toBe(1);
    }
  });

  test('a file that cannot be read', async () => {
    const run = await ficus(['check', 'test/fixtures/no-such-file.yaml']);
    expect(run.stdout).toBe('test/fixtures/no-such-file.yaml:1:1 cannot read file (ENOENT)\n');
    expect(run.code).toBe(1);
  });
});

describe('a valid file: a one-line summary, exit 0', () => {
  test.each([
    ['test/fixtures/valid/minimal.yaml', 1, 1],
    ['test/fixtures/valid/full.yaml', 4, 2],
  ])('%s', async (file, routes, services) => {
    const run = await ficus(['check', file]);
    expect(run.stdout).toMatch(new RegExp(`^${file.replace(/[./]/g, '\\$&')}: ok \\(${routes} routes, ${services} services, hash [0-9a-f]{16}\\)\\n$`));
    expect(run.code).toBe(0);
  });

  test('environment references resolve from the environment ficus runs in', async () => {
    const dir = await tempDir();
    const file = join(dir, 'routes.yaml');
    await writeFile(file, 'version: 1\nlisten:\n  port: ${env:FICUS_TEST_PORT}\nservices:\n  legacy: { url: "${env:FICUS_TEST_URL}" }\nroutes: []\n');
    expect((await ficus(['check', file], { FICUS_TEST_PORT: '8081', FICUS_TEST_URL: 'http://127.0.0.1:1' })).code).toBe(0);
    const missing = await ficus(['check', file], { FICUS_TEST_URL: 'http://127.0.0.1:1' });
    expect(missing.stdout).toBe(`${file}:3:9 listen.port: environment variable FICUS_TEST_PORT is not set (write \${env:FICUS_TEST_PORT:-default} to allow that)\n`);
    expect(missing.code).toBe(1);
  });
});

test('`ficus schema` prints the JSON Schema of routes.yaml', async () => {
  const run = await ficus(['schema']);
  expect(run.code).toBe(0);
  const printed = JSON.parse(run.stdout) as Record<string, unknown>;
  expect(printed).toEqual(JSON.parse(JSON.stringify(routesJsonSchema())));
  expect(printed).toMatchObject({ type: 'object', additionalProperties: false, required: expect.arrayContaining(['version', 'services', 'routes']) });
});
