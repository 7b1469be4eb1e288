import { join } from 'node:path';
import { Client, request, type Dispatcher } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy, tempDir } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

async function adminProxy() {
  const legacy = await startUpstream('legacy');
  const down = await refusedPort();
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  pair: { urls: [${legacy.url}/v2, http://127.0.0.1:${down}] }
routes:
  - name: paused
    match: { path: /paused }
    respond: { status: 503, body: paused, headers: { authorization: "Bearer respond-secret" } }
  - name: new-api
    match: { path: /api, methods: [GET] }
    to: pair
  - name: rest
    match: { path: / }
    to: legacy
`).replace('admin: { host: 127.0.0.1, port: 0 }', 'admin: { host: 127.0.0.1, port: 0, token: admin-secret }'),
  );
  return { proxy, legacy, admin: proxy.app.adminUrl };
}

test('GET /healthz and /readyz answer 200 while serving', async () => {
  const { admin } = await adminProxy();
  for (const path of ['/healthz', '/readyz']) {
    const res = await request(`${admin}${path}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    await res.body.json();
  }
});

test('GET /metrics is Prometheus text with ficus_ process metrics and the config hash', async () => {
  const { proxy, admin } = await adminProxy();
  await (await request(`${proxy.app.proxyUrl}/hello`)).body.text();
  const res = await request(`${admin}/metrics`);
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.body.text();
  const hash = proxy.app.store.current.snapshot.hash;
  expect(text).toContain(`ficus_config_info{hash="${hash}"} 1`);
  expect(text).toContain('ficus_config_last_reload_success 1');
  expect(text).toMatch(/^ficus_process_cpu_user_seconds_total \d/m);
  expect(text).toMatch(/^ficus_process_resident_memory_bytes \d/m);
  expect(text).toMatch(/^ficus_nodejs_eventloop_lag_seconds \d/m);
  expect(text).toContain('ficus_requests_total{route="rest",service="legacy",color="",side="stable",code="200"} 1');
  expect(text).toMatch(/^ficus_request_duration_seconds_count\{route="rest",service="legacy",color="",side="stable"\} 1$/m);
  expect(text).toMatch(/^ficus_endpoint_up\{service="pair",endpoint="http:\/\/127\.0\.0\.1:\d+"\} 1$/m);
  // Every sample line belongs to ficus.
  for (const line of text.split('\n')) if (line && !line.startsWith('#')) expect(line).toMatch(/^ficus_/);
});

test('GET /status is JSON: config hash, load time, last reload, routes, services with endpoint health', async () => {
  const { proxy, admin, legacy } = await adminProxy();
  const res = await request(`${admin}/status`);
  expect(res.statusCode).toBe(200);
  const status = (await res.body.json()) as Record<string, unknown>;
  const snapshot = proxy.app.store.current.snapshot;
  expect(status).toMatchObject({
    ready: true,
    config: {
      file: proxy.file,
      hash: snapshot.hash,
      loadedAt: snapshot.loadedAt.toISOString(),
      lastReload: { trigger: 'start', result: 'success', hashAfter: snapshot.hash, errors: [] },
    },
    routes: [
      { name: 'paused', respond: 503 },
      { name: 'new-api', service: 'pair', migration: 'new' },
      { name: 'rest', service: 'legacy', migration: 'legacy' },
    ],
    services: [
      { name: 'legacy', legacy: true, endpoints: [{ url: legacy.url, up: true, inflight: 0 }] },
      { name: 'pair', legacy: false, endpoints: [{ url: `${legacy.url}/v2`, up: true }, { up: true }] },
    ],
  });
  expect(JSON.stringify(status)).not.toContain('admin-secret');
});

test('GET /config is the effective config with the admin token and other secrets redacted', async () => {
  const { admin } = await adminProxy();
  const res = await request(`${admin}/config`);
  expect(res.statusCode).toBe(200);
  const config = (await res.body.json()) as { admin: { token: string }; routes: { respond?: { headers: Record<string, string> } }[] };
  expect(config.admin.token).toBe('<redacted>');
  expect(config.routes[0]?.respond?.headers.authorization).toBe('<redacted>');
  const text = JSON.stringify(config);
  expect(text).not.toContain('admin-secret');
  expect(text).not.toContain('respond-secret');
  expect(text).toContain('new-api');
});

test('GET / is an HTML status page naming the routes, services and config hash', async () => {
  const { proxy, admin } = await adminProxy();
  const res = await request(`${admin}/`);
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
  const page = await res.body.text();
  expect(page).toMatch(/^<!doctype html>/);
  for (const text of ['paused', 'new-api', 'rest', 'legacy', 'pair', proxy.app.store.current.snapshot.hash, 'ready']) expect(page).toContain(text);
  expect(page).not.toContain('admin-secret');
});

test.each([
  { method: 'GET', path: '/nope', status: 404, allow: undefined },
  { method: 'GET', path: '/reload', status: 405, allow: 'POST' },
  { method: 'DELETE', path: '/status', status: 405, allow: 'GET, HEAD' },
  { method: 'PUT', path: '/metrics', status: 405, allow: 'GET, HEAD' },
  // A path, never a host: `//status` is no /status, and `//x/reload` no /reload.
  { method: 'GET', path: '//status', status: 404, allow: undefined },
  { method: 'GET', path: '//evil.example/status', status: 404, allow: undefined },
  { method: 'POST', path: '//x/reload', status: 404, allow: undefined },
])('$method $path answers $status', async ({ method, path, status, allow }) => {
  const { proxy, admin } = await adminProxy();
  // A client of the admin origin sends the path as written; a URL would read `//…` as a host.
  const client = new Client(admin);
  onTestFinished(() => client.close());
  const res = await client.request({ method: method as Dispatcher.HttpMethod, path, headers: { authorization: 'Bearer admin-secret' } });
  expect(res.statusCode).toBe(status);
  expect(res.headers.allow).toBe(allow);
  await res.body.json();
  expect(proxy.app.store.lastReload.trigger).toBe('start');
});

test.each(['/healthz', '/readyz', '/status', '/metrics', '/config', '/'])('HEAD %s answers as its GET, without a body', async (path) => {
  const { admin } = await adminProxy();
  const get = await request(`${admin}${path}`);
  await get.body.dump();
  const head = await request(`${admin}${path}`, { method: 'HEAD' });
  expect(head.statusCode).toBe(get.statusCode);
  expect(head.headers['content-type']).toBe(get.headers['content-type']);
  expect(await head.body.text()).toBe('');
});

test('a request target that is not a path gets 400, not 500', async () => {
  const { admin } = await adminProxy();
  const { port } = new URL(admin);
  const out = await rawExchange(Number(port), 'GET http://[bad/status HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
  expect(out.statuses).toEqual([400]);
});

test('a blue/green preview token is in none of /config, /status, GET / and /explain, even asked with the token', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`services:
  orders:
    blue: { url: ${legacy.url} }
    green: { url: ${legacy.url}/green }
    active: blue
    preview: { header: x-preview, token: preview-secret }
routes:
  - { name: orders, match: { path: / }, to: orders }
`),
  );
  const admin = proxy.app.adminUrl;
  const explainUrl = `${admin}/explain?url=/orders&header=${encodeURIComponent('x-preview: preview-secret')}`;
  const answers: Record<string, string> = {};
  for (const url of [`${admin}/config`, `${admin}/status`, `${admin}/`, explainUrl]) {
    const res = await request(url);
    expect(res.statusCode).toBe(200);
    answers[url] = await res.body.text();
  }
  // The door is open, and the explanation says the token opened it, without repeating it.
  expect(answers[explainUrl]).toContain('green');
  expect(JSON.parse(answers[`${admin}/config`] ?? '')).toMatchObject({ services: { orders: { preview: { header: 'x-preview', token: '<redacted>' } } } });
  for (const [url, text] of Object.entries(answers)) expect({ url, leaks: text.includes('preview-secret') }).toEqual({ url, leaks: false });
});

test('values the file takes from the environment are redacted wherever the admin shows the config, addresses excepted', async () => {
  const legacy = await startUpstream('legacy');
  const env = { INTERNAL_KEY: 'internal-key-3', VIP_SESSION: 'vip-session-4', SIGNING_KEY: 'signing-key-6', SIG_RE: '^sekret-re-7$', LEGACY_URL: legacy.url };
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: "\${env:LEGACY_URL}" }
cohorts:
  vip: { cookie: { name: session, value: "\${env:VIP_SESSION}" } }
routes:
  - name: signed
    match: { path: /signed, query: { sig: "\${env:SIGNING_KEY}" }, headers: { x-internal-auth: "\${env:INTERNAL_KEY}", x-sig: { regex: "\${env:SIG_RE}" } } }
    to: legacy
  - { name: rest, match: { path: / }, to: legacy }
`),
    { env },
  );
  const admin = proxy.app.adminUrl;
  const config = await (await request(`${admin}/config`)).body.text();
  const pages = ['/status', '/', '/explain?method=GET&url=/signed'];
  const shown = [config, ...(await Promise.all(pages.map(async (page) => (await request(`${admin}${page}`)).body.text())))].join('\n');
  for (const secret of ['internal-key-3', 'vip-session-4', 'signing-key-6', 'sekret-re-7']) expect(shown).not.toContain(secret);
  // An address from the environment is no secret: /config is where an operator checks it.
  expect(JSON.parse(config)).toMatchObject({ services: { legacy: { url: legacy.url } } });
});

test('values from the environment stay redacted after a reload', async () => {
  const legacy = await startUpstream('legacy');
  const env = { INTERNAL_KEY: 'internal-key-8' };
  const yaml = (name: string) =>
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
routes:
  - { name: ${name}, match: { path: /signed, headers: { x-internal-auth: "\${env:INTERNAL_KEY}" } }, to: legacy }
  - { name: rest, match: { path: / }, to: legacy }
`);
  const proxy = await startProxy(yaml('signed'), { env });
  await proxy.write(yaml('signed-v2'));
  const reload = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
  expect(await reload.body.json()).toMatchObject({ result: 'success' });
  const admin = proxy.app.adminUrl;
  const pages = ['/config', '/status', '/', '/explain?method=GET&url=/signed'];
  const shown = (await Promise.all(pages.map(async (page) => (await request(`${admin}${page}`)).body.text()))).join('\n');
  expect(shown).toContain('signed-v2');
  expect(shown).not.toContain('internal-key-8');
});

test('every address the README names (host, port, url, urls, auditLog, stateFile) is shown in /config when it comes from the environment', async () => {
  const legacy = await startUpstream('legacy');
  const files = await tempDir();
  const env = {
    LISTEN_HOST: '127.0.0.1',
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    URL_A: `${legacy.url}/a`,
    URL_B: `${legacy.url}/b`,
    AUDIT: join(files, 'audit.jsonl'),
    STATE: join(files, 'state.json'),
  };
  const proxy = await startProxy(
    `version: 1
listen: { host: "\${env:LISTEN_HOST}", port: 0 }
admin:
  host: "\${env:ADMIN_HOST}"
  port: \${env:ADMIN_PORT}
auditLog: "\${env:AUDIT}"
stateFile: "\${env:STATE}"
services:
  pair: { urls: ["\${env:URL_A}", "\${env:URL_B}"] }
routes:
  - { name: rest, match: { path: / }, to: pair }
`,
    { env },
  );
  const config = (await (await request(`${proxy.app.adminUrl}/config`)).body.json()) as Record<string, unknown>;
  expect(config).toMatchObject({
    listen: { host: '127.0.0.1' },
    admin: { host: '127.0.0.1', port: 0 },
    auditLog: env.AUDIT,
    stateFile: env.STATE,
    services: { pair: { urls: [env.URL_A, env.URL_B] } },
  });
});

test('addresses are told by their place in the file, not by their name: a header or query condition called host or url from the environment is redacted', async () => {
  const legacy = await startUpstream('legacy');
  const env = { BLUE: `${legacy.url}/blue`, DOTTED: `${legacy.url}/v2`, SITE: 'shop.example.com', INTERNAL: 'tenant-7.internal', CALLBACK: 'https://hooks.example.com/k3y' };
  const proxy = await startProxy(
    routesYaml(`services:
  pair:
    blue: { url: "\${env:BLUE}" }
    green: { url: ${legacy.url} }
    active: blue
  orders.v2: { url: "\${env:DOTTED}" }
routes:
  - { name: site, match: { host: "\${env:SITE}", headers: { host: "\${env:INTERNAL}" }, query: { url: "\${env:CALLBACK}" } }, to: pair }
  - { name: rest, match: { path: / }, to: pair }
`),
    { env },
  );
  const config = (await (await request(`${proxy.app.adminUrl}/config`)).body.json()) as { services: unknown; routes: { match: unknown }[] };
  expect(config.services).toMatchObject({ pair: { blue: { url: env.BLUE } }, 'orders.v2': { url: env.DOTTED } });
  expect(config.routes[0]?.match).toEqual({ host: env.SITE, headers: { host: '<redacted>' }, query: { url: '<redacted>' } });
});

test('a value the environment left empty is shown empty in /config, not as <redacted>: it hides nothing and tells the variable was empty', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
routes:
  - { name: note, match: { path: /note }, respond: { status: 200, body: "\${env:NOTE:-}" } }
  - { name: rest, match: { path: / }, to: legacy }
`),
    { env: {} },
  );
  const config = (await (await request(`${proxy.app.adminUrl}/config`)).body.json()) as { routes: { respond?: { body?: string } }[] };
  expect(config.routes[0]?.respond?.body).toBe('');
});

test('/config lists no user ids, only how many a cohort or toggle names: the admin GETs need no token', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
cohorts:
  staff: { users: [alice@example.com, bob@example.com] }
toggles:
  invoices: { users: [carol@example.com] }
routes:
  - { name: rest, match: { path: / }, to: legacy }
`),
  );
  const text = await (await request(`${proxy.app.adminUrl}/config`)).body.text();
  expect(text).not.toMatch(/alice|bob|carol/);
  expect(JSON.parse(text)).toMatchObject({ cohorts: { staff: { users: ['<redacted>', '<redacted>'] } }, toggles: { invoices: { users: ['<redacted>'] } } });
});
