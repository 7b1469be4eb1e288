import { gzipSync } from 'node:zlib';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';
import { samples } from '../helpers/metrics.js';
import { shadowRoutesYaml } from '../helpers/shadow.js';

/**
 * With `compare: true`, the shadow's answer is compared with the primary's and the verdict
 * counted in ficus_shadow_comparisons_total{route,result}.
 */

interface Answer {
  status?: number;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
}

function answering(answer: Answer): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(answer.status ?? 200, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  };
}

async function comparing(primary: Answer, shadow: Answer, options = ''): Promise<TestProxy> {
  const legacy = await startUpstream('legacy', answering(primary));
  const fresh = await startUpstream('fresh', answering(shadow));
  return startProxy(shadowRoutesYaml(legacy.url, fresh.url, options));
}

async function comparisons(proxy: TestProxy): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const { labels, value } of await samples(proxy.app, 'ficus_shadow_comparisons_total')) counts[`${labels.route}/${labels.result}`] = value;
  return counts;
}

const json = (value: unknown): Answer => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });
const text = (body: string): Answer => ({ headers: { 'content-type': 'text/plain' }, body });
const PAGE = '<tr><td>row</td><td>42.00</td></tr>'.repeat(200);
const gzippedPage = (level: number): Answer => ({ headers: { 'content-type': 'text/html', 'content-encoding': 'gzip' }, body: gzipSync(PAGE, { level }) });
const order = { id: 7, items: [{ sku: 'a', updatedAt: '2024-01-01' }], meta: { generatedAt: 'now', total: 3 } };

test.each<[string, Answer, Answer, string, 'match' | 'mismatch' | 'skipped', string?]>([
  ['the same JSON', json(order), json(order), '', 'match'],
  ['JSON with its keys in another order', json(order), json({ meta: { total: 3, generatedAt: 'now' }, items: [{ updatedAt: '2024-01-01', sku: 'a' }], id: 7 }), '', 'match'],
  ['a JSON value that differs', json(order), json({ ...order, id: 8 }), '', 'mismatch'],
  ['a JSON field the shadow lacks', json(order), json({ id: 7, items: order.items }), '', 'mismatch'],
  ['differences only at ignoreJsonPaths', json(order), json({ ...order, items: [{ sku: 'a', updatedAt: '2025-05-05' }], meta: { generatedAt: 'later', total: 3 } }),
    ', ignoreJsonPaths: [meta.generatedAt, "items[*].updatedAt"]', 'match'],
  ['JSON compressed on one side only, where the header differs', json(order), { headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(order)) }, '', 'mismatch'],
  ['JSON compressed on one side, content-encoding ignored', json(order), { headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(order)) }, ', ignoreHeaders: [Content-Encoding]', 'match'],
  ['the same text compressed at two gzip levels', gzippedPage(1), gzippedPage(6), '', 'match'],
  ['text compressed on one side, content-encoding ignored', { headers: { 'content-type': 'text/html' }, body: PAGE }, gzippedPage(6), ', ignoreHeaders: [Content-Encoding]', 'match'],
  ['another status', text('ok'), { ...text('ok'), status: 201 }, '', 'mismatch'],
  ['another header value', { ...text('ok'), headers: { 'content-type': 'text/plain', 'x-api-version': '1' } }, { ...text('ok'), headers: { 'content-type': 'text/plain', 'x-api-version': '2' } }, '', 'mismatch'],
  ['a header only the shadow sends', text('ok'), { ...text('ok'), headers: { 'content-type': 'text/plain', 'x-new': '1' } }, '', 'mismatch'],
  ['a differing header named in ignoreHeaders', { ...text('ok'), headers: { 'content-type': 'text/plain', 'x-api-version': '1' } }, { ...text('ok'), headers: { 'content-type': 'text/plain', 'x-api-version': '2' } }, ', ignoreHeaders: [X-Api-Version]', 'match'],
  ['headers that always differ (date, server, etag, set-cookie…)', { ...text('ok'), headers: { 'content-type': 'text/plain', server: 'legacy/1', etag: '"a"', 'set-cookie': 'sid=1', 'x-powered-by': 'php' } },
    { ...text('ok'), headers: { 'content-type': 'text/plain', server: 'fresh/2', etag: '"b"', 'set-cookie': 'sid=2', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' } }, '', 'match'],
  ['the same text', text('hello world'), text('hello world'), '', 'match'],
  ['another text body', text('hello world'), text('hello there'), '', 'mismatch'],
  ['a primary body over maxBodyBytes', text('x'.repeat(2048)), text('x'.repeat(2048)), ', maxBodyBytes: 1024', 'skipped'],
  ['a shadow body over maxBodyBytes', text('x'), text('x'.repeat(2048)), ', maxBodyBytes: 1024', 'skipped'],
  ['a JSON body over maxBodyBytes', json({ a: 'x'.repeat(2048) }), json({ a: 'x'.repeat(2048) }), ', maxBodyBytes: 1024', 'skipped'],
])('%s', async (_name, primary, shadow, options, result) => {
  const proxy = await comparing(primary, shadow, options);
  const res = await request(`${proxy.app.proxyUrl}/orders/7`);
  // The client always gets the primary's answer, whatever the shadow said.
  expect(res.statusCode).toBe(primary.status ?? 200);
  expect(Buffer.from(await res.body.arrayBuffer())).toEqual(Buffer.from(primary.body ?? ''));
  await vi.waitFor(async () => expect(await comparisons(proxy)).toEqual({ [`api/${result}`]: 1 }));
});

test('HEAD compares status and headers only', async () => {
  const proxy = await comparing({ ...text('a'), headers: { 'content-type': 'text/plain', 'x-v': '1' } }, { ...text('b'), headers: { 'content-type': 'text/plain', 'x-v': '1' } });
  const res = await request(`${proxy.app.proxyUrl}/orders`, { method: 'HEAD' });
  await res.body.dump();
  await vi.waitFor(async () => expect(await comparisons(proxy)).toEqual({ 'api/match': 1 }));
});

test('the comparisons are exposed as ficus_shadow_comparisons_total{route,result}', async () => {
  const proxy = await comparing(text('one'), text('two'));
  for (let i = 0; i < 2; i++) await (await request(`${proxy.app.proxyUrl}/a`)).body.dump();
  await vi.waitFor(async () => expect(await comparisons(proxy)).toEqual({ 'api/mismatch': 2 }));
  const exposition = await (await request(`${proxy.app.adminUrl}/metrics`)).body.text();
  expect(exposition).toContain('ficus_shadow_comparisons_total{route="api",result="mismatch"} 2');
  expect(exposition).toMatch(/ficus_requests_total\{route="api",service="fresh",color="",side="shadow",code="200"\} 2/);
  expect(exposition).toMatch(/ficus_requests_total\{route="api",service="legacy",color="",side="stable",code="200"\} 2/);
});

test("a revalidation the primary answers 304 (its own etag) is skipped, not a mismatch: validators are each service's own", async () => {
  const serve = (etag: string) => (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
    res.writeHead(200, { 'content-type': 'application/json', etag }).end('{"id":7}');
  };
  const legacy = await startUpstream('legacy', serve('"l1"'));
  const fresh = await startUpstream('fresh', serve('"f1"'));
  const proxy = await startProxy(shadowRoutesYaml(legacy.url, fresh.url));
  const res = await request(`${proxy.app.proxyUrl}/orders/7`, { headers: { 'if-none-match': '"l1"' } });
  expect(res.statusCode).toBe(304);
  await res.body.dump();
  await vi.waitFor(async () => expect(await comparisons(proxy)).toEqual({ 'api/skipped': 1 }));
});
