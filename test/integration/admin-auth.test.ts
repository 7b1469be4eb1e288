import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { startApp } from '../../src/app.js';
import { ConfigError } from '../../src/config/issues.js';
import { memoryLogger, routesYaml, startProxy, tempDir } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';
import { BIN } from '../helpers/child.js';


function config(upstream: string, admin: string): string {
  return routesYaml(`services:\n  legacy: { url: ${upstream} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: legacy\n`).replace(
    'admin: { host: 127.0.0.1, port: 0 }',
    `admin: ${admin}`,
  );
}

test.each([
  { name: 'no Authorization header', headers: {}, status: 401 },
  { name: 'a wrong token', headers: { authorization: 'Bearer not-it' }, status: 401 },
  { name: 'the token as a prefix', headers: { authorization: 'Bearer s3cret-token-and-more' }, status: 401 },
  { name: 'another scheme', headers: { authorization: 'Basic s3cret-token' }, status: 401 },
  { name: 'the token without a scheme', headers: { authorization: 's3cret-token' }, status: 401 },
  { name: 'the right bearer token', headers: { authorization: 'Bearer s3cret-token' }, status: 200 },
  { name: 'the right token, scheme in lower case', headers: { authorization: 'bearer s3cret-token' }, status: 200 },
])('with admin.token set, POST /reload with $name answers $status', async ({ headers, status }) => {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(config(upstream.url, '{ host: 127.0.0.1, port: 0, token: s3cret-token }'));
  const res = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST', headers });
  expect(res.statusCode).toBe(status);
  if (status === 401) expect(res.headers['www-authenticate']).toBe('Bearer');
  expect(await res.body.text()).not.toContain('s3cret');
  expect(proxy.app.store.lastReload.trigger).toBe(status === 200 ? 'admin' : 'start');
});

test('with admin.token set, an unknown POST is refused before it is routed', async () => {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(config(upstream.url, '{ host: 127.0.0.1, port: 0, token: s3cret-token }'));
  expect((await request(`${proxy.app.adminUrl}/routes/rest/eject`, { method: 'POST' })).statusCode).toBe(401);
});

test('with admin.token set, GETs need no token', async () => {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(config(upstream.url, '{ host: 127.0.0.1, port: 0, token: s3cret-token }'));
  for (const path of ['/healthz', '/readyz', '/metrics', '/status', '/config', '/explain?url=/', '/']) {
    const res = await request(`${proxy.app.adminUrl}${path}`);
    expect(res.statusCode, path).toBe(200);
    expect(await res.body.text(), path).not.toContain('s3cret');
  }
});

test('without admin.token, POST /reload needs no Authorization', async () => {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(config(upstream.url, '{ host: 127.0.0.1, port: 0 }'));
  expect((await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' })).statusCode).toBe(200);
});

test.each(['0.0.0.0', '::', '192.168.10.1', '127.example.com'])('an admin listener on %s without a token refuses to start', async (host) => {
  const upstream = await startUpstream('legacy');
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, config(upstream.url, `{ host: "${host}", port: 0 }`));
  const started = startApp({ configFile: file, logger: memoryLogger().logger, watch: false });
  // Should it start after all, stop it so the failure below is the only outcome.
  void started.then((app) => app.drain(), () => undefined);
  const error = await started.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).issues).toContainEqual(
    expect.objectContaining({ file, line: 3, path: 'admin.host', message: expect.stringContaining('admin.token') }),
  );
});

test('an admin listener on a non-loopback host starts when a token is set', async () => {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(config(upstream.url, '{ host: 0.0.0.0, port: 0, token: s3cret-token }'));
  const port = new URL(proxy.app.adminUrl).port;
  expect((await request(`http://127.0.0.1:${port}/healthz`)).statusCode).toBe(200);
});

test('ficus start refuses a non-loopback admin host without a token, with a clear message and exit 1', async () => {
  const upstream = await startUpstream('legacy');
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, config(upstream.url, '{ host: 0.0.0.0, port: 0 }'));
  const child = spawn(process.execPath, [BIN, 'start', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code).toBe(1);
  expect(stderr).toMatch(new RegExp(`${file}:3:\\d+ admin\\.host: .*0\\.0\\.0\\.0.*admin\\.token`));
  expect(stderr).toContain('not starting');
});

test.each([
  { name: 'the token emptied', admin: '{ host: 0.0.0.0, port: 0, token: "" }', at: 'admin.host' },
  { name: 'the host made loopback and the token emptied', admin: '{ host: 127.0.0.1, port: 0, token: "" }', at: 'admin.token' },
  { name: 'the host made loopback and the token removed', admin: '{ host: 127.0.0.1, port: 0 }', at: 'admin.host' },
])('an admin listener bound to a non-loopback host keeps its token through a reload with $name', async ({ admin, at }) => {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(config(upstream.url, '{ host: 0.0.0.0, port: 0, token: s3cret-token }'));
  const port = new URL(proxy.app.adminUrl).port;
  await proxy.write(config(upstream.url, admin));
  const report = await proxy.app.reload('signal');
  expect(report.result).toBe('failure');
  expect(report.issues.map((issue) => issue.path)).toEqual([at]);
  // The listener is still where it was bound, and still asks for the token.
  const res = await request(`http://127.0.0.1:${port}/reload`, { method: 'POST' });
  expect(res.statusCode).toBe(401);
  await res.body.dump();
});

test('an admin host written bracketed, [::1], is loopback and binds', async () => {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(config(upstream.url, '{ host: "[::1]", port: 0 }'));
  expect(proxy.app.adminUrl).toMatch(/^http:\/\/\[::1\]:\d+$/);
  const res = await request(`${proxy.app.adminUrl}/healthz`);
  expect(res.statusCode).toBe(200);
  await res.body.dump();
});
