import { request } from 'undici';
import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

test('a trusted proxy that sent X-Forwarded-* only: Forwarded starts with the hops it told, not with ficus own', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`trustedProxies: [127.0.0.0/8]\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const res = await request(`${proxy.app.proxyUrl}/`, { headers: { host: 'shop.example', 'x-forwarded-for': '2001:db8::7, 203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.example' } });
  await res.body.dump();
  expect(legacy.seen[0]?.headers.forwarded).toBe('for="[2001:db8::7]";proto=https;host=public.example, for=203.0.113.9, for=127.0.0.1;proto=http;host=shop.example');
});

// A reader of Forwarded's first element with a plain pattern, as Spring's is.
const firstProto = (forwarded: string) => /proto="?([^;,"]+)/i.exec(forwarded.split(',')[0] as string)?.[1];
const firstHost = (forwarded: string) => /host="?([^;,"]+)/i.exec(forwarded.split(',')[0] as string)?.[1];

test.each([
  { case: 'an IPv4 address with a port', xff: '198.51.100.7:51234', first: 'for="198.51.100.7:51234";proto=http;host=shop.example' },
  { case: 'an obfuscated node with an obfuscated port', xff: '_hidden:_p1', first: 'for="_hidden:_p1";proto=http;host=shop.example' },
  { case: 'a forged node with a quote and a colon', xff: '1:2";proto=https;host=evil.example;x=', first: 'for=unknown;proto=http;host=shop.example' },
  { case: 'a forged node without a colon', xff: 'x;proto=https;host=evil.example;y=', first: 'for=unknown;proto=http;host=shop.example' },
])('a client’s X-Forwarded-For entry passed on by a trusted proxy is a node, or unknown: $case', async ({ xff, first }) => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`trustedProxies: [127.0.0.0/8]\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  // What a balancer passes on: the client's own X-Forwarded-For, the client's address appended, its own scheme and Host.
  const res = await request(`${proxy.app.proxyUrl}/`, { headers: { host: 'shop.example', 'x-forwarded-for': `${xff}, 203.0.113.9`, 'x-forwarded-proto': 'http', 'x-forwarded-host': 'shop.example, inner.example' } });
  await res.body.dump();
  const forwarded = legacy.seen[0]?.headers.forwarded as string;
  expect(forwarded.split(', ')[0]).toBe(first);
  expect([firstProto(forwarded), firstHost(forwarded)]).toEqual(['http', 'shop.example']);
});

test('ficus’s own proto comes before the Host in its element: a Host holding ";proto=https" is not read as the scheme by a plain pattern', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const res = await request(`${proxy.app.proxyUrl}/`, { headers: { host: 'x;proto=https;y' } });
  await res.body.dump();
  const forwarded = legacy.seen[0]?.headers.forwarded as string;
  expect(forwarded).toBe('for=127.0.0.1;proto=http;host="x;proto=https;y"');
  expect(firstProto(forwarded)).toBe('http');
});
