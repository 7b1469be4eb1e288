import { readFile } from 'node:fs/promises';
import { expect, test } from 'vitest';

const read = (path: string) => readFile(new URL(`../../${path}`, import.meta.url), 'utf8');

test('CI runs exactly the README set-up and test commands', async () => {
  const [ci, readme] = await Promise.all([read('.ci/run'), read('README.md')]);
  const commands = ci.split('\n').filter((line) => line && !line.startsWith('#') && !line.startsWith('set '));
  expect(commands).toEqual(['npm ci', 'npm test']);
  expect(readme).toContain('npm ci');
  expect(readme).toContain('npm run demo');
  expect(readme).toContain('npm test');
});

test('npm ci builds the CLI, and the scripts the README names exist', async () => {
  const pkg = JSON.parse(await read('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };
  expect(pkg.bin.ficus).toBe('bin/ficus.js');
  expect(pkg.scripts.prepare).toMatch(/build/);
  for (const script of ['build', 'test', 'lint', 'bench', 'demo', 'typecheck']) expect(pkg.scripts[script]).toBeTruthy();
});

test('the image runs as non-root, checks the admin /healthz and reads /etc/ficus/routes.yaml', async () => {
  const dockerfile = await read('Dockerfile');
  expect(dockerfile).toMatch(/^FROM node:\d+-slim|ARG NODE_IMAGE=node:\d+-slim/m);
  expect(dockerfile).toMatch(/^USER (?!root)\w+/m);
  expect(dockerfile).toMatch(/^HEALTHCHECK[\s\S]*FICUS_HEALTH_URL/m);
  expect(dockerfile).toContain('/healthz');
  expect(dockerfile).toContain('/etc/ficus/routes.yaml');
  expect(dockerfile).toContain('npm ci');
});

test('the image\'s test stage has every file the project checks read, and the build context keeps them', async () => {
  const [dockerfile, ignore] = await Promise.all([read('Dockerfile'), read('.dockerignore')]);
  const stage = dockerfile.slice(dockerfile.indexOf('AS test'), dockerfile.indexOf('AS prune'));
  for (const file of ['README.md', 'Dockerfile', '.dockerignore', '.ci/']) expect(stage).toContain(file);
  const ignored = ignore.split('\n').filter((line) => line && !line.startsWith('#'));
  for (const file of ['.ci', 'README.md', 'Dockerfile', 'test']) expect(ignored).not.toContain(file);
});

test('the README lists every log event ficus writes', async () => {
  const { EVENT } = await import('../../src/observe/log.js');
  const readme = await read('README.md');
  expect(Object.values(EVENT).filter((event) => !readme.includes(`\`${event}\``) && !readme.includes(`"${event}"`))).toEqual([]);
});

test("the README's metrics table names exactly the ficus metrics, with their labels", async () => {
  const { Metrics } = await import('../../src/observe/metrics.js');
  const metrics = new Metrics();
  const own = (await metrics.registry.getMetricsAsJSON())
    .filter((m) => !/^ficus_(process|nodejs)_/.test(m.name))
    .map((m) => `${m.name} | ${((metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] }).labelNames ?? []).join(', ')}`)
    .sort();
  const readme = await read('README.md');
  const table = [...readme.matchAll(/^\| `(ficus_[a-z_]+)` \| (?:`([^`]*)`)? ?\|/gm)].map((m) => `${m[1]} | ${m[2] ?? ''}`).sort();
  expect(table).toEqual(own);
});

test('the benchmark\'s routes file is one ficus accepts', async () => {
  // bench/ is not in the image's build context: this check runs from a clone only.
  const routes = new URL('../../bench/lib/routes.js', import.meta.url);
  const { existsSync } = await import('node:fs');
  if (!existsSync(routes)) return;
  const { benchRoutesYaml } = (await import(routes.href)) as { benchRoutesYaml: (o: Record<string, unknown>) => { yaml: string } };
  const { parseRoutes } = await import('../../src/config/load.js');
  const { yaml } = benchRoutesYaml({ port: 1, adminPort: 2, app: 'http://127.0.0.1:3', sink: 'http://127.0.0.1:4', unused: (i: number) => `http://127.0.0.1:${10 + i}` });
  const loaded = parseRoutes(yaml, 'bench.yaml', {});
  expect(loaded.ok ? [] : loaded.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`)).toEqual([]);
});
