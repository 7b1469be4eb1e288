import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy, tempDir } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';
import { BIN } from '../helpers/child.js';

/* The `ficus` command line as users run it: bin/ficus.js in a child process (needs `npm run build`). */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function spawnFicus(args: string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, FICUS_CONFIG: undefined, FICUS_ADMIN: undefined, FICUS_ADMIN_TOKEN: undefined, ...options.env };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const result: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (result.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (result.stderr += chunk));
  const done = once(child, 'close').then(([code]) => {
    result.code = code as number | null;
    return result;
  });
  return { child, result, done };
}

const ficus = (args: string[], options?: Parameters<typeof spawnFicus>[1]) => spawnFicus(args, options).done;

const VALID = (service: string) => routesYaml(`services:\n  ${service}: { url: http://127.0.0.1:3001 }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: ${service}\n`);
const BROKEN = 'version: 1\nservices: {}\nroutes: [\n';

test('--help prints the usage and every command of this version', async () => {
  const run = await ficus(['--help']);
  expect(run.code).toBe(0);
  for (const command of ['start', 'check', 'explain', 'status', 'cutover', 'weight', 'toggle', 'schema', 'demo']) expect(run.stdout).toContain(`ficus ${command}`);
  expect(run.stdout).toContain('$FICUS_CONFIG');
});

test.each([
  { args: [], says: /usage:/ },
  { args: ['frobnicate'], says: /unknown command "frobnicate"[\s\S]*usage:/ },
  { args: ['check', '--bogus'], says: /unknown option "--bogus" for "ficus check"/ },
  { args: ['check', 'a.yaml', 'b.yaml'], says: /takes one routes file/ },
  { args: ['status', '--admin'], says: /--admin needs a value/ },
  { args: ['status', '--admin', '127.0.0.1:9901'], says: /the admin API is a URL such as http:\/\/127\.0\.0\.1:9901, not "127\.0\.0\.1:9901"/ },
  { args: ['schema', 'extra'], says: /"ficus schema" takes no arguments/ },
])('ficus $args is a usage error: exit 2', async ({ args, says }) => {
  const run = await ficus(args);
  expect(run.code).toBe(2);
  expect(run.stderr).toMatch(says);
  expect(run.stdout).toBe('');
});

test('--version prints the package version', async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const run = await ficus(['--version']);
  expect(run).toMatchObject({ code: 0, stdout: `ficus ${pkg.version}\n` });
});

/*
 * Discovery order (SPEC §6): -c FILE, else $FICUS_CONFIG, else ./routes.yaml. Every file that
 * must not be chosen is broken, so a pass proves which one was read.
 */
test.each([
  { name: '-c wins over $FICUS_CONFIG and ./routes.yaml', args: ['-c', 'chosen.yaml'], env: 'other.yaml', expected: 'chosen.yaml' },
  { name: '--config=FILE is -c', args: ['--config=chosen.yaml'], env: 'other.yaml', expected: 'chosen.yaml' },
  { name: 'a positional FILE is -c', args: ['chosen.yaml'], env: 'other.yaml', expected: 'chosen.yaml' },
  { name: '$FICUS_CONFIG wins over ./routes.yaml', args: [], env: 'chosen.yaml', expected: 'chosen.yaml' },
  { name: './routes.yaml last', args: [], env: undefined, expected: 'routes.yaml' },
])('check finds its config: $name', async ({ args, env, expected }) => {
  const dir = await tempDir();
  for (const name of ['chosen.yaml', 'other.yaml', 'routes.yaml']) await writeFile(join(dir, name), name === expected ? VALID('legacy') : BROKEN);
  const run = await ficus(['check', ...args], { cwd: dir, env: { FICUS_CONFIG: env } });
  expect(run.stdout).toMatch(new RegExp(`^${expected.replace('.', '\\.')}: ok \\(1 routes, 1 services, hash [0-9a-f]+\\)\\n$`));
  expect(run.code).toBe(0);
});

test('check reports every error of a bad file with its position and exits 1', async () => {
  const dir = await tempDir();
  await writeFile(
    join(dir, 'bad.yaml'),
    routesYaml(
      'services:\n  legacy: { url: http://127.0.0.1:3001, colour: red }\nroutes:\n' +
        '  - name: rest\n    match: { path: / }\n    to: legacyy\n  - name: rest\n    match: { path: /x }\n    to: legacy\n',
    ),
  );
  const run = await ficus(['check', 'bad.yaml'], { cwd: dir });
  expect(run.code).toBe(1);
  expect(run.stdout.trim().split('\n')).toEqual([
    expect.stringMatching(/^bad\.yaml:5:\d+ services\.legacy\.colour: unknown key "colour"$/),
    expect.stringMatching(/^bad\.yaml:9:\d+ routes\.0\.to: unknown service "legacyy"$/),
    expect.stringMatching(/^bad\.yaml:10:\d+ routes\.1\.name: duplicate route name "rest"/),
  ]);
});

test('a missing file is an error at its name, not a crash', async () => {
  const dir = await tempDir();
  const run = await ficus(['check', '-c', 'nope.yaml'], { cwd: dir });
  expect(run.code).toBe(1);
  expect(run.stdout).toMatch(/^nope\.yaml:1:1 cannot read file \(ENOENT\)/);
});

test.each([{ token: undefined }, { token: 's3cret' }])('the shipped routes.yaml passes check (FICUS_ADMIN_TOKEN=$token)', async ({ token }) => {
  const run = await ficus(['check', 'routes.yaml'], { env: { FICUS_ADMIN_TOKEN: token } });
  expect(run.stderr).toBe('');
  expect(run.stdout).toMatch(/^routes\.yaml: ok/);
  expect(run.code).toBe(0);
});

test('schema prints the JSON Schema of routes.yaml', async () => {
  const run = await ficus(['schema']);
  expect(run.code).toBe(0);
  const schema = JSON.parse(run.stdout) as { properties: Record<string, unknown> };
  expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['version', 'listen', 'admin', 'services', 'routes']));
});

test('status shows a running proxy: routes in order, services, endpoint health and migration share', async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('catalog-v2');
  const proxy = await startProxy(
    routesYaml(
      `services:\n  legacy: { url: ${legacy.url} }\n  catalog-v2: { url: ${v2.url} }\nroutes:\n` +
        `  - name: paused\n    match: { path: /paused }\n    respond: { status: 503 }\n` +
        `  - name: catalog\n    match: { path: /catalog }\n    to: catalog-v2\n` +
        `  - name: rest\n    match: { path: / }\n    to: legacy\n`,
    ),
  );
  const run = await ficus(['status', '--admin', proxy.app.adminUrl]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const out = run.stdout;
  expect(out).toContain(`ficus at ${proxy.app.adminUrl}: ready`);
  expect(out).toContain(proxy.app.store.current.snapshot.hash);
  expect(out).toMatch(/paused +path under \/paused +respond 503/);
  expect(out).toMatch(/catalog +path under \/catalog +→ catalog-v2 \(new\)/);
  expect(out.indexOf('paused')).toBeLessThan(out.indexOf('catalog '));
  expect(out).toMatch(new RegExp(`legacy \\(legacy\\) +${legacy.url} +up`));
  expect(out).toContain('migration: 1 of 2 forwarding routes go to new services');

  const json = await ficus(['status', '--json'], { env: { FICUS_ADMIN: proxy.app.adminUrl } });
  expect(json.code).toBe(0);
  const body = JSON.parse(json.stdout) as { routes: { name: string }[] };
  expect(body.routes.map((r) => r.name)).toEqual(['paused', 'catalog', 'rest']);
});

test('status without a running proxy says where it looked and exits 1', async () => {
  const port = await refusedPort();
  const run = await ficus(['status', '--admin', `http://127.0.0.1:${port}`]);
  expect(run.code).toBe(1);
  expect(run.stderr).toContain(`cannot reach the admin API at http://127.0.0.1:${port} (ECONNREFUSED)`);
});

test.each([
  { kind: 'an HTML page', type: 'text/html', body: '<html>welcome</html>' },
  { kind: 'another service’s JSON health', type: 'application/json', body: '{"status":"UP"}' },
  { kind: 'a JSON null', type: 'application/json', body: 'null' },
  { kind: 'JSON with routes that are no list', type: 'application/json', body: '{"ready":true,"routes":"x","services":[]}' },
])('status against a server that is not ficus ($kind) says so, in words, and exits 1', async ({ type, body }) => {
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': type }).end(body));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => void server.close());
  const port = (server.address() as { port: number }).port;
  const run = await ficus(['status', '--admin', `http://127.0.0.1:${port}`]);
  expect(run.code).toBe(1);
  expect(run.stderr).toBe(`ficus: http://127.0.0.1:${port}/status answered, but not with ficus's /status (is that ficus's admin API?)\n`);
});

test('status against a listener that never answers gives up after 5 s and says so, in words', async () => {
  const server = createServer(() => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => void server.closeAllConnections());
  onTestFinished(() => void server.close());
  const port = (server.address() as { port: number }).port;
  const run = await ficus(['status', '--admin', `http://127.0.0.1:${port}`]);
  expect(run.code).toBe(1);
  expect(run.stderr).toContain(`cannot reach the admin API at http://127.0.0.1:${port} (no answer within 5 s)`);
}, 15_000);

test('status reaches an admin listener on a port that browsers (and fetch) refuse, such as 6666', async () => {
  // One of fetch's blocked ports that is free here: an admin listener may be on any of them.
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ready":true,"routes":[],"services":[]}'));
  let port: number | undefined;
  for (const candidate of [6665, 6666, 6667, 6668, 6669, 10080]) {
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(candidate, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      port = candidate;
      break;
    }
  }
  if (port === undefined) throw new Error('none of the blocked ports is free');
  onTestFinished(() => void server.close());
  const run = await ficus(['status', '--admin', `http://127.0.0.1:${port}`]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  expect(run.stdout).toContain(`ficus at http://127.0.0.1:${port}: ready`);
});

test('status reaches an admin API under a path prefix (kubectl proxy, an nginx location) at PREFIX/status', async () => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ready":true,"routes":[],"services":[]}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => void server.close());
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/v1/namespaces/shop/services/ficus:9901/proxy`;
  for (const admin of [base, `${base}/`]) {
    const run = await ficus(['status', '--admin', admin]);
    expect(run.code, run.stderr).toBe(0);
  }
  expect(seen).toEqual(['/api/v1/namespaces/shop/services/ficus:9901/proxy/status', '/api/v1/namespaces/shop/services/ficus:9901/proxy/status']);
});

test('start runs the proxy, reloads on SIGHUP, and drains to exit 0 on SIGTERM', async () => {
  const legacy = await startUpstream('legacy');
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: legacy\n`));
  const { child, result, done } = spawnFicus(['start', '-c', file], { cwd: dir });
  const started = await new Promise<{ proxy: string; admin: string }>((resolve, reject) => {
    const look = () => {
      for (const line of result.stdout.split('\n')) {
        if (line.includes('"event":"started"')) return resolve(JSON.parse(line) as { proxy: string; admin: string });
      }
    };
    child.stdout.on('data', look);
    void done.then(() => reject(new Error(`exited: ${result.stderr}`)));
  });

  const res = await request(`${started.proxy}/x`);
  expect(res.statusCode).toBe(200);
  await res.body.dump();

  child.kill('SIGHUP');
  const unchanged = /ficus_config_reloads_total\{result="unchanged"\} 1/;
  const deadline = Date.now() + 5_000;
  let metrics = '';
  // No event tells the test a signal was handled: poll the metric, with a deadline.
  while (!unchanged.test(metrics) && Date.now() < deadline) {
    metrics = await (await request(`${started.admin}/metrics`)).body.text();
    if (!unchanged.test(metrics)) await delay(25);
  }
  expect(metrics).toMatch(unchanged);

  child.kill('SIGTERM');
  const run = await done;
  expect(run.code).toBe(0);
  expect(run.stdout).toContain('"event":"stopped"');
});

test.each([
  { name: 'an invalid file', setup: async () => 'version: 2\n', says: /routes\.yaml:1:\d+ version: [\s\S]*configuration is invalid; not starting/ },
  {
    name: 'a busy port',
    setup: async () => {
      const busy = await startUpstream('busy');
      return `version: 1\nlisten: { host: 127.0.0.1, port: ${busy.port} }\nadmin: { host: 127.0.0.1, port: 0 }\nservices: {}\nroutes: []\n`;
    },
    says: /cannot listen on 127\.0\.0\.1:\d+: the port is already in use \(listen in the routes file\)/,
  },
  {
    name: 'an address no interface of the machine has',
    setup: async () => `version: 1\nlisten: { host: 192.0.2.1, port: 8089 }\nadmin: { host: 127.0.0.1, port: 0 }\nservices: {}\nroutes: []\n`,
    says: /^ficus: cannot listen on 192\.0\.2\.1:8089: no network interface of this machine has that address \(listen in the routes file\)$/m,
  },
  {
    name: 'an admin address no interface of the machine has',
    setup: async () => `version: 1\nlisten: { host: 127.0.0.1, port: 0 }\nadmin: { host: 192.0.2.1, port: 9989, token: t0k3n-for-the-test }\nservices: {}\nroutes: []\n`,
    says: /^ficus: cannot listen on 192\.0\.2\.1:9989: no network interface of this machine has that address \(admin in the routes file\)$/m,
  },
])('start with $name explains why it is not starting and exits 1', async ({ setup, says }) => {
  const dir = await tempDir();
  await writeFile(join(dir, 'routes.yaml'), await setup());
  const run = await ficus(['start'], { cwd: dir });
  expect(run.code).toBe(1);
  expect(run.stderr).toMatch(says);
});

test.each([
  { name: 'a schema', args: () => Promise.resolve(['schema']), status: 0 },
  { name: 'a check that found errors', args: async () => {
    const file = join(await tempDir(), 'routes.yaml');
    await writeFile(file, 'version: 1\nservices: {}\nroutes:\n  - { name: a, match: {}, to: nowhere }\n');
    return ['check', file];
  }, status: 1 },
])('$name piped into a reader that stops early (`| head`) ends quietly, with its own status ($status)', async ({ args, status }) => {
  const child = spawn(process.execPath, [BIN, ...(await args())], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // The reader is gone before the first line is written.
  child.stdout.destroy();
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(stderr).not.toMatch(/EPIPE|Error:/);
  expect(code).toBe(status);
});
