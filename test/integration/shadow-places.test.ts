import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { metricBy, metricSum } from '../helpers/metrics.js';
import { startProxy } from '../helpers/proxy.js';
import { shadowRoutesYaml } from '../helpers/shadow.js';
import { startUpstream } from '../helpers/upstream.js';

/** A shadow copy judged before it is done (the primary outgrew maxBodyBytes) still holds, then gives back, its place. */

test('copies judged while still out at the shadow (the primary outgrew maxBodyBytes) give their place back once the shadow answers', async () => {
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.alloc(4096, 'x'));
  });
  const held: ServerResponse[] = [];
  const fresh = await startUpstream('fresh', (req, res) => {
    req.resume();
    held.push(res);
  });
  const proxy = await startProxy(shadowRoutesYaml(legacy.url, fresh.url, ', maxBodyBytes: 1024, maxConcurrent: 2, timeout: 30s', 'drainTimeout: 300ms\n'));
  onTestFinished(() => fresh.close());
  for (let i = 0; i < 2; i++) await (await request(`${proxy.app.proxyUrl}/dl/${i}`)).body.dump();
  await vi.waitFor(() => expect(held).toHaveLength(2));
  // Judged (skipped) while both copies are still out at the shadow.
  await vi.waitFor(async () => expect(await metricBy(proxy.app, 'ficus_shadow_comparisons_total', 'result')).toEqual({ skipped: 2 }));
  for (const res of held.splice(0)) res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.alloc(4096, 'x'));
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_requests_total', { side: 'shadow' })).toBe(2));
  // Both places are free again: the next two requests are copied, none dropped as saturated.
  for (let i = 0; i < 2; i++) await (await request(`${proxy.app.proxyUrl}/dl/after-${i}`)).body.dump();
  await vi.waitFor(() => expect(fresh.seen).toHaveLength(4));
  expect(await metricBy(proxy.app, 'ficus_shadow_dropped_total', 'reason')).toEqual({});
});

test("a copy judged while the shadow's answer is still coming reads that answer to its end, keeping none of it: the shadow's connection is reused", async () => {
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.alloc(4096, 'x'));
  });
  const finished: boolean[] = [];
  const fresh = await startUpstream('fresh', (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.on('close', () => finished.push(res.writableFinished));
    // The head after the primary outgrew maxBodyBytes (the copy is judged by then), the body in two parts.
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '4096' });
      res.write(Buffer.alloc(2048, 'y'));
      setTimeout(() => res.end(Buffer.alloc(2048, 'y')), 150);
    }, 100);
  });
  let connections = 0;
  fresh.server.on('connection', () => connections++);
  const proxy = await startProxy(shadowRoutesYaml(legacy.url, fresh.url, ', maxBodyBytes: 1024, timeout: 5s', 'drainTimeout: 300ms\n'));
  for (let i = 0; i < 2; i++) {
    await (await request(`${proxy.app.proxyUrl}/dl/${i}`)).body.dump();
    await vi.waitFor(() => expect(finished).toHaveLength(i + 1));
  }
  expect(finished).toEqual([true, true]);
  expect(connections).toBe(1);
  expect(await metricBy(proxy.app, 'ficus_shadow_comparisons_total', 'result')).toEqual({ skipped: 2 });
});
