import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSecureContext } from 'node:tls';
import { request } from 'undici';
import { expect, onTestFinished, test } from 'vitest';
import { startFicus } from '../helpers/child.js';
import { routesYaml, startProxy, tempDir } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * https upstreams: the name a TLS connection is made to (SNI) and checked against is the
 * service URL's host, never the Host a client sent, and a handshake or certificate failure is a
 * connect error, tried again on another endpoint. The certificates in test/fixtures/tls are for
 * localhost and 127.0.0.1, by a test CA (`ca.crt`), plus a self-signed one.
 */

const TLS = fileURLToPath(new URL('../fixtures/tls/', import.meta.url));
const pair = (name: string) => ({ key: readFileSync(join(TLS, `${name}.key`)), cert: readFileSync(join(TLS, `${name}.crt`)) });

/** An https upstream recording each ClientHello's server name (undefined: none sent). */
async function tlsUpstream(name: 'localhost' | 'self-signed'): Promise<{ port: number; hellos: (string | undefined)[] }> {
  const hellos: (string | undefined)[] = [];
  const context = createSecureContext(pair(name));
  const server: Server = createServer(
    {
      ...pair(name),
      SNICallback: (sni, done) => {
        hellos.push(sni === '' ? undefined : sni);
        done(null, context);
      },
    },
    (_req, res) => res.end(name),
  );
  // Without SNI the callback is not called: count those hellos by the connections instead.
  server.on('secureConnection', (socket) => {
    if ((socket as unknown as { servername?: string | false }).servername === false) hellos.push(undefined);
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, hellos };
}

const oneService = (url: string) => routesYaml(`services:\n  legacy: { urls: [${url}] }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`);

test('the server name sent to an https upstream is its URL’s host, whatever Host the client sent', async () => {
  const upstream = await tlsUpstream('localhost');
  const proxy = await startProxy(oneService(`"https://localhost:${upstream.port}"`));
  await (await request(`${proxy.app.proxyUrl}/x`, { headers: { host: 'shop.example.com' } })).body.dump();
  expect(upstream.hellos).toEqual(['localhost']);
});

test('a certificate the upstream fails to prove is a connect error: the request is tried again on another endpoint', async () => {
  const bad = await tlsUpstream('self-signed');
  const good = await startUpstream('good');
  const proxy = await startProxy(oneService(`"https://127.0.0.1:${bad.port}", ${good.url}`));
  const statuses: number[] = [];
  // Round-robin: every other request is first sent to the endpoint whose certificate fails.
  for (let i = 0; i < 4; i++) {
    const res = await request(`${proxy.app.proxyUrl}/x`);
    await res.body.dump();
    statuses.push(res.statusCode);
  }
  expect(statuses).toEqual([200, 200, 200, 200]);
  expect(await (await request(`${proxy.app.adminUrl}/metrics`)).body.text()).toMatch(/ficus_upstream_errors_total\{service="legacy",kind="connect"\} [1-9]/);
});

test('a public Host in front of an https upstream whose certificate names the upstream is served, every Host on one TLS connection', async () => {
  const upstream = await tlsUpstream('localhost');
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, oneService(`"https://localhost:${upstream.port}"`));
  // The test CA is trusted the way an operator trusts a private one.
  const ficus = await startFicus(file, { NODE_EXTRA_CA_CERTS: join(TLS, 'ca.crt') });
  for (const host of ['shop.example.com', 'a.example.com', 'shop.example.com', 'b.example.com']) {
    const res = await request(`${ficus.proxyUrl}/x`, { headers: { host } });
    expect(await res.body.text()).toBe('localhost');
    expect(res.statusCode).toBe(200);
  }
  expect(upstream.hellos).toEqual(['localhost']);
});

test('why a certificate was refused reaches the log at warn, once a minute per endpoint, not with every request', async () => {
  const bad = await tlsUpstream('self-signed');
  const proxy = await startProxy(oneService(`"https://127.0.0.1:${bad.port}"`));
  for (let i = 0; i < 3; i++) await (await request(`${proxy.app.proxyUrl}/x`)).body.dump();
  const errors = proxy.logs.filter((l) => l.event === 'upstream.error');
  expect(errors.filter((l) => l.level === 40)).toEqual([expect.objectContaining({ kind: 'connect', message: expect.stringMatching(/self[- ]signed/i) })]);
  expect(errors.length).toBeGreaterThanOrEqual(3);
});
