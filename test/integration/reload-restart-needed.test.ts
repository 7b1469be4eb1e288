import { request } from 'undici';
import { expect, test } from 'vitest';
import { startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

const file = (listenPort: number, token: string, upstream: string) =>
  `version: 1\nlisten: { host: 127.0.0.1, port: ${listenPort} }\nadmin: { host: 127.0.0.1, port: 0, token: "${token}" }\n` +
  `services:\n  legacy: { url: ${upstream} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`;

test('a new listen address is applied at the next restart, and the reload says so; the old listener keeps serving', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(file(0, '', legacy.url));
  await proxy.write(file(1, '', legacy.url));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(proxy.logs.filter((l) => l.event === 'config.restart_needed')).toEqual([expect.objectContaining({ keys: ['listen'] })]);
  const res = await request(`${proxy.app.proxyUrl}/still`);
  expect(res.statusCode).toBe(200);
  await res.body.dump();
});

test('a new limits.maxHeaderBytes is applied at the next restart, and the reload says so', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(file(0, '', legacy.url));
  await proxy.write(`${file(0, '', legacy.url)}limits: { maxHeaderBytes: 4096 }\n`);
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(proxy.logs.filter((l) => l.event === 'config.restart_needed')).toEqual([expect.objectContaining({ keys: ['limits.maxHeaderBytes'] })]);
});

test('a new admin token takes effect at once, without a restart warning', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(file(0, '', legacy.url));
  await proxy.write(file(0, 'sesame', legacy.url));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(proxy.logs.filter((l) => l.event === 'config.restart_needed')).toHaveLength(0);
  const refused = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST' });
  expect(refused.statusCode).toBe(401);
  await refused.body.dump();
  const allowed = await request(`${proxy.app.adminUrl}/reload`, { method: 'POST', headers: { authorization: 'Bearer sesame' } });
  expect(allowed.statusCode).toBe(200);
  await allowed.body.dump();
});
