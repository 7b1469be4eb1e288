import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/** Routing never believes a forwarding field from an untrusted peer (SPEC §1.7): not in a cohort, not in a route condition. */

test('a cohort read from an X-Forwarded-* header holds for a trusted proxy only, never for what an untrusted client claims', async () => {
  const legacy = await startUpstream('legacy');
  const next = await startUpstream('next');
  const routes = (trusted: string) =>
    routesYaml(`trustedProxies: [${trusted}]
services:
  legacy: { url: ${legacy.url} }
  next: { url: ${next.url} }
cohorts:
  beta: { header: { name: x-forwarded-group, value: beta } }
routes:
  - { name: beta, match: { path: /, cohort: beta }, to: next }
  - { name: rest, match: { path: / }, to: legacy }
`);
  const untrusted = await startProxy(routes('10.0.0.0/8'));
  const claimed = await request(`${untrusted.app.proxyUrl}/x`, { headers: { 'x-forwarded-group': 'beta' } });
  await claimed.body.dump();
  expect(claimed.headers['x-upstream']).toBe('legacy');
  const trusted = await startProxy(routes('127.0.0.0/8'));
  const told = await request(`${trusted.app.proxyUrl}/x`, { headers: { 'x-forwarded-group': 'beta' } });
  await told.body.dump();
  expect(told.headers['x-upstream']).toBe('next');
});

test('a route condition on Forwarded is not met by what an untrusted client claims, and is by a trusted proxy', async () => {
  const legacy = await startUpstream('legacy');
  const routes = (trusted: string) =>
    routesYaml(`trustedProxies: [${trusted}]
services:
  legacy: { url: ${legacy.url} }
routes:
  - { name: https-only, match: { path: /, headers: { forwarded: { regex: "proto=https" } } }, to: legacy }
  - { name: plain, match: { path: / }, respond: { status: 426, body: "use https" } }
`);
  const untrusted = await startProxy(routes('10.0.0.0/8'));
  const claimed = await request(`${untrusted.app.proxyUrl}/pay`, { headers: { forwarded: 'for=1.2.3.4;proto=https' } });
  await claimed.body.dump();
  expect(claimed.statusCode).toBe(426);
  expect(legacy.seen).toHaveLength(0);
  const trusted = await startProxy(routes('127.0.0.0/8'));
  const told = await request(`${trusted.app.proxyUrl}/pay`, { headers: { forwarded: 'for=1.2.3.4;proto=https' } });
  await told.body.dump();
  expect(told.statusCode).toBe(200);
});
