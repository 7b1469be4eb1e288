import { expect, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/** SPEC §4: `ficus_endpoint_up{service,endpoint}` lists every endpoint, both colours included, before and after a reload. */
test('both colours of a blue/green service stay in ficus_endpoint_up across a reload', async () => {
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  const yaml = (active: string) =>
    routesYaml(`services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: ${active}
routes:
  - { name: rest, match: { path: / }, to: orders }
`);
  const proxy = await startProxy(yaml('blue'));
  const up = async () => (await (await fetch(`${proxy.app.adminUrl}/metrics`)).text()).split('\n').filter((line) => line.startsWith('ficus_endpoint_up{')).sort();
  const expected = [
    `ficus_endpoint_up{service="orders",endpoint="${blue.url}"} 1`,
    `ficus_endpoint_up{service="orders",endpoint="${green.url}"} 1`,
  ].sort();
  expect(await up()).toEqual(expected);

  await proxy.write(yaml('green'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(await up()).toEqual(expected);
});
