import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

test('a trusted proxy that sent X-Forwarded-* only: Forwarded starts with the hops it told, not with ficus own', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`trustedProxies: [127.0.0.0/8]\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const res = await request(`${proxy.app.proxyUrl}/`, { headers: { host: 'shop.example', 'x-forwarded-for': '2001:db8::7, 203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.example' } });
  await res.body.dump();
  expect(legacy.seen[0]?.headers.forwarded).toBe('for="[2001:db8::7]";host=public.example;proto=https, for=203.0.113.9, for=127.0.0.1;host=shop.example;proto=http');
});
