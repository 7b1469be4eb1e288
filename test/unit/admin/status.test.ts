import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { statusPage } from '../../../src/admin/page.js';
import { redactedConfig, statusDocument } from '../../../src/admin/status.js';
import { ConfigStore } from '../../../src/config/store.js';
import type { Clock } from '../../../src/observe/clock.js';
import { routesYaml, tempDir } from '../../helpers/proxy.js';

const NOW = Date.parse('2025-03-01T12:00:00Z');

async function open(text: string, clock: Clock = { now: () => NOW }) {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, text);
  const store = await ConfigStore.open(file, { clock, random: () => 0, serviceEvents: () => ({ ejected() {}, returned() {}, panic() {} }) });
  onTestFinished(() => store.close());
  return { store, clock, write: (next: string) => writeFile(file, next) };
}

const CONFIG = routesYaml(`services:
  pool: { urls: [http://127.0.0.1:1, http://127.0.0.1:2/base], outlier: { consecutiveFailures: 1 } }
routes:
  - name: teapot
    match: { path: /tea }
    respond: { status: 418, headers: { authorization: "Bearer respond-secret", x-api-key: key-secret, x-plain: visible } }
  - name: rest
    match: { path: / }
    to: pool
`).replace('admin: { host: 127.0.0.1, port: 0 }', 'admin: { host: 127.0.0.1, port: 0, token: "${env:ADMIN_TOKEN}" }');

test('redactedConfig hides the admin token and secret-looking values, and leaves the running config alone', async () => {
  const { store } = await open(CONFIG.replace('${env:ADMIN_TOKEN}', 'token-secret'));
  const config = redactedConfig(store) as { admin: { token: string }; routes: { respond?: { headers: Record<string, string> } }[] };
  expect(config.admin.token).toBe('<redacted>');
  expect(config.routes[0]?.respond?.headers).toEqual({ authorization: '<redacted>', 'x-api-key': '<redacted>', 'x-plain': 'visible' });
  const text = JSON.stringify(config);
  for (const secret of ['token-secret', 'respond-secret', 'key-secret']) expect(text).not.toContain(secret);
  expect(store.current.snapshot.source.admin.token).toBe('token-secret');
});

test('an empty admin token is shown as empty, not as a redacted secret', async () => {
  const { store } = await open(CONFIG.replace('${env:ADMIN_TOKEN}', ''));
  expect((redactedConfig(store) as { admin: { token: string } }).admin.token).toBe('');
});

test('statusDocument shows an ejected endpoint as down until when, from the injected clock', async () => {
  const { store } = await open(CONFIG.replace('${env:ADMIN_TOKEN}', ''));
  const pool = store.current.services.get('pool');
  const second = pool?.endpoints[1];
  if (!pool || !second) throw new Error('pool has two endpoints');
  pool.outlier.failure(second);
  const status = statusDocument(store, { now: () => NOW }, true);
  expect(status.services[0]?.endpoints).toEqual([
    expect.objectContaining({ url: 'http://127.0.0.1:1', up: true, consecutiveFailures: 0, timesEjected: 0 }),
    expect.objectContaining({ url: 'http://127.0.0.1:2/base', up: false, timesEjected: 1, ejectedUntil: new Date(second.ejectedUntil).toISOString() }),
  ]);
  expect(statusDocument(store, { now: () => second.ejectedUntil }, true).services[0]?.endpoints[1]?.up).toBe(true);
});

test('the status page escapes what a routes file can put in it', async () => {
  const { store, write } = await open(CONFIG.replace('${env:ADMIN_TOKEN}', ''));
  await write(CONFIG.replace('${env:ADMIN_TOKEN}', '').replace('    to: pool', '    to: pool\n    "<img src=x onerror=alert(1)>": 1'));
  expect((await store.reload('admin')).result).toBe('failure');
  const page = statusPage(statusDocument(store, { now: () => NOW }, false));
  expect(page).not.toContain('<img');
  expect(page).toContain('&lt;img src=x onerror=alert(1)&gt;');
  expect(page).toContain('draining');
  expect(page).toContain(store.file);
});

test('secret-looking headers and parameters are redacted in /config however written, and in the match conditions /status shows', async () => {
  const { store } = await open(
    routesYaml(`services:
  app: { url: http://127.0.0.1:1 }
cohorts:
  partners: { header: { name: authorization, value: "Bearer cohort-secret" } }
  beta: { header: { name: x-beta, value: "yes" } }
routes:
  - name: keyed
    match: { path: /k, headers: { x-api-key: header-secret, authorization: { regex: "^Bearer regex-secret$" }, x-plain: shown }, query: { api_key: query-secret, page: "2" } }
    to: app
  - name: cookie
    match: { path: /c }
    respond: { status: 200, headers: { set-cookie: "sid=cookie-secret" } }
`),
  );
  const config = JSON.stringify(redactedConfig(store));
  const status = JSON.stringify(statusDocument(store, { now: () => NOW }, true));
  for (const secret of ['cohort-secret', 'header-secret', 'regex-secret', 'query-secret', 'cookie-secret']) {
    expect({ secret, inConfig: config.includes(secret), inStatus: status.includes(secret) }).toEqual({ secret, inConfig: false, inStatus: false });
  }
  // What is no secret stays readable: names, and values under plain names.
  for (const shown of ['"x-beta"', '"yes"', '"x-plain"', '"shown"', '"page"', '"authorization"']) expect(config).toContain(shown);
  const match = (statusDocument(store, { now: () => NOW }, true).routes as { name: string; match?: string[] }[]).find((r) => r.name === 'keyed')?.match;
  expect(match).toEqual([
    'path under /k',
    'header x-api-key is "<redacted>"',
    'header authorization matches /<redacted>/',
    'header x-plain is "shown"',
    'query api_key=<redacted>',
    'query page=2',
  ]);
});
