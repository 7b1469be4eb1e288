import { expect, test, vi } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * A file whose routes and services are renamed release after release: the series of names the
 * running file no longer has must go, once scraped, or /metrics and the heap grow for as long as
 * the proxy runs (Traefik drops them the same way).
 */
test('series of routes and services a reload removed are exported once more, then leave /metrics', async () => {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('v2');
  const yaml = (n: number) =>
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  search-rc${n}: { url: ${v2.url} }
routes:
  - { name: search-rc${n}, match: { path: /search }, to: legacy, shadow: { to: search-rc${n}, compare: true } }
  - { name: rest, match: { path: / }, to: legacy }
`);
  const proxy = await startProxy(yaml(0));
  const scrape = async () => (await (await fetch(`${proxy.app.adminUrl}/metrics`)).text()).split('\n').filter((l) => !l.startsWith('#') && /rc\d/.test(l));
  const release = (lines: string[], n: number) => lines.filter((l) => l.includes(`rc${n}"`));
  for (let n = 0; n < 12; n++) {
    await (await fetch(`${proxy.app.proxyUrl}/search`)).arrayBuffer();
    // The copy's comparison ends after the client's answer: its series is there once it is counted.
    await vi.waitFor(async () => expect((await scrape()).some((l) => l.startsWith(`ficus_shadow_comparisons_total{route="search-rc${n}"`))).toBe(true), { timeout: 5_000, interval: 10 });
    await proxy.write(yaml(n + 1));
    expect((await proxy.app.reload('admin')).result).toBe('success');
    // The first scrape after the reload still carries the last values of the release just removed.
    const first = await scrape();
    expect(release(first, n).some((l) => l.startsWith(`ficus_requests_total{route="search-rc${n}"`))).toBe(true);
    expect(release(first, n).some((l) => l.startsWith(`ficus_shadow_comparisons_total{route="search-rc${n}"`))).toBe(true);
    // The next one has none of them.
    expect(release(await scrape(), n)).toEqual([]);
  }
  expect((await scrape()).filter((l) => !l.includes('rc12"'))).toEqual([]);
});
