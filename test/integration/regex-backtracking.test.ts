import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { startFicus } from '../helpers/child.js';
import { routesYaml, tempDir } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

/*
 * A pattern that backtracks exponentially (`(a+)+`) must not let one request stall the proxy.
 * The proxy runs as a process of its own (`npm test` builds it first): stalled, it would take
 * this test's own event loop down with it.
 */
test('a route regex that would backtrack exponentially answers at once, and the proxy keeps serving', async () => {
  const legacy = await startUpstream('legacy');
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(
    file,
    routesYaml(
      `services:\n  legacy: { url: ${legacy.url} }\nroutes:\n` +
        `  - { name: nested, match: { regex: "^/(a+)+$", headers: { x-id: { regex: "^(\\\\w+\\\\s?)*$" } } }, to: legacy }\n` +
        `  - { name: rest, match: { path: /ok }, to: legacy }\n`,
    ),
  );
  const ficus = await startFicus(file);
  // Each would take longer than the age of the universe to fail on a backtracking engine.
  const evil = `/${'a'.repeat(5_000)}!`;
  const started = performance.now();
  const path = await request(`${ficus.proxyUrl}${evil}`, { headersTimeout: 5_000 });
  expect(path.statusCode).toBe(404);
  await path.body.dump();
  const header = await request(`${ficus.proxyUrl}/aaa`, { headers: { 'x-id': `${'word '.repeat(2_000)}!` }, headersTimeout: 5_000 });
  expect(header.statusCode).toBe(404);
  await header.body.dump();
  expect(performance.now() - started).toBeLessThan(3_000);
  // And what matches still does.
  const ok = await request(`${ficus.proxyUrl}/aaa`, { headers: { 'x-id': 'just words' } });
  expect(ok.statusCode).toBe(200);
  await ok.body.dump();
  const health = await request(`${ficus.adminUrl}/healthz`);
  expect(health.statusCode).toBe(200);
  await health.body.dump();
});
