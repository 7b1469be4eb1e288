import { request } from 'undici';
import { expect, test } from 'vitest';
import { startProxy, routesYaml } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

test('a request reaches the upstream through the proxy', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: legacy\n`));
  const res = await request(`${proxy.app.proxyUrl}/hello?x=1`);
  expect(res.statusCode).toBe(200);
  expect(await res.body.json()).toMatchObject({ name: 'legacy', url: '/hello?x=1' });
});
