import { get, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';
import { metricBy, metricSum } from '../helpers/metrics.js';
import { shadowRoutesYaml } from '../helpers/shadow.js';

/**
 * The shadow mirror's bounds and counts: what `maxConcurrent` really bounds, bodyless answers
 * (HEAD, 204, 304) compared, and every sampled request counted exactly once.
 */

const shadowYaml = (legacyUrl: string, freshUrl: string, options: string): string => shadowRoutesYaml(legacyUrl, freshUrl, options, 'drainTimeout: 300ms\n');

const values = (proxy: TestProxy, name: string): Promise<Record<string, number>> => metricBy(proxy.app, name, 'result', 'reason');

/** Copies the shadow answered, as counted once their answer is read: requests_total{side="shadow"}. */
const shadowExchanges = (proxy: TestProxy): Promise<number> => metricSum(proxy.app, 'ficus_requests_total', { side: 'shadow' });

interface Answer {
  status?: number;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
}

/** Answers by path: `/<case>` gets `answers[case]`. */
function byPath(answers: Record<string, Answer>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    req.on('end', () => {
      const answer = answers[(req.url ?? '').slice(1)] ?? {};
      res.writeHead(answer.status ?? 200, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  };
}

/** node:http as the client: it reads a 304's head as the whole answer, as browsers do. */
function fetchStatus(url: string, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(url, { method }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

test('maxConcurrent bounds the copies holding answers for a comparison, not only those waiting for the shadow', async () => {
  // The primary sends its head and part of a JSON body, then holds: a slow download.
  const held: ServerResponse[] = [];
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"n":');
    held.push(res);
  });
  const fresh = await startUpstream('fresh', byPath({}));
  const proxy = await startProxy(shadowYaml(legacy.url, fresh.url, ', maxConcurrent: 1'));
  onTestFinished(() => {
    for (const res of held) res.destroy();
  });
  for (let i = 1; i <= 3; i++) {
    // Each client has the head: its primary is under way, its copy's comparison waits for it.
    const res = await request(`${proxy.app.proxyUrl}/${i}`);
    res.body.on('error', () => undefined);
    await vi.waitFor(() => expect(held).toHaveLength(i));
    // The first copy's answer is in (and held) before the next request comes.
    if (i === 1) await vi.waitFor(async () => expect(await shadowExchanges(proxy)).toBe(1));
  }
  // One comparison is pending, holding up to 2 × maxBodyBytes: the others are dropped, not copied.
  expect(fresh.seen).toHaveLength(1);
  expect(await values(proxy, 'ficus_shadow_dropped_total')).toEqual({ saturated: 2 });
});

test.each<{ case: string; method: string; answer: Answer }>([
  { case: '304 with the Content-Length of the representation (RFC 9110 §8.6)', method: 'GET', answer: { status: 304, headers: { etag: '"v1"', 'content-length': '13' } } },
  { case: '304 without a Content-Length', method: 'GET', answer: { status: 304, headers: { etag: '"v1"' } } },
  { case: '204', method: 'GET', answer: { status: 204 } },
  { case: 'HEAD of a JSON resource', method: 'HEAD', answer: { headers: { 'content-type': 'application/json', 'content-length': '13' } } },
])('the same bodyless answer on both sides is a match: $case', async ({ method, answer }) => {
  const legacy = await startUpstream('legacy', byPath({ x: answer }));
  const fresh = await startUpstream('fresh', byPath({ x: answer }));
  const proxy = await startProxy(shadowYaml(legacy.url, fresh.url, ', methods: [GET, HEAD]'));
  expect(await fetchStatus(`${proxy.app.proxyUrl}/x`, method)).toBe(answer.status ?? 200);
  await vi.waitFor(async () => expect(Object.keys(await values(proxy, 'ficus_shadow_comparisons_total'))).not.toEqual([]));
  expect(await values(proxy, 'ficus_shadow_comparisons_total')).toEqual({ match: 1 });
});

test('every sampled request is counted exactly once, whatever became of it', async () => {
  const json = (value: unknown): Answer => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });
  const gzipped = (value: unknown): Answer => ({ headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(value)) });
  const legacy = await startUpstream(
    'legacy',
    byPath({ same: json({ a: 1 }), other: json({ a: 1 }), zipped: gzipped({ a: 1, b: [1] }), chunky: { headers: { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' }, body: 'text' }, broken: json({ a: 1 }) }),
  );
  const fresh = await startUpstream('fresh', (req, res) => {
    // The shadow dies on /broken before answering.
    if (req.url === '/broken') return void req.socket.destroy();
    byPath({ same: json({ a: 1 }), other: json({ a: 2 }), zipped: gzipped({ b: [1], a: 1 }), chunky: { headers: { 'content-type': 'text/plain', 'content-length': '4' }, body: 'text' } })(req, res);
  });
  const proxy = await startProxy(shadowYaml(legacy.url, fresh.url, ', methods: [GET, HEAD, POST]'));
  const paths = ['same', 'other', 'zipped', 'chunky', 'broken', 'same', 'other'];
  for (const path of paths) expect(await fetchStatus(`${proxy.app.proxyUrl}/${path}`)).toBe(200);
  const total = async () => Object.values(await values(proxy, 'ficus_shadow_comparisons_total')).reduce((a, b) => a + b, 0);
  await vi.waitFor(async () => expect(await total()).toBe(paths.length));
  expect(await values(proxy, 'ficus_shadow_comparisons_total')).toEqual({ match: 4, mismatch: 2, error: 1 });
});

test('a primary answer that outgrows maxBodyBytes frees its copy at once, not when the download ends', async () => {
  const held: ServerResponse[] = [];
  const legacy = await startUpstream('legacy', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write(Buffer.alloc(4096, 'x'));
    held.push(res);
  });
  onTestFinished(() => {
    for (const res of held) res.destroy();
  });
  const fresh = await startUpstream('fresh');
  const proxy = await startProxy(shadowYaml(legacy.url, fresh.url, ', maxBodyBytes: 1024, maxConcurrent: 1'));
  const res = await request(`${proxy.app.proxyUrl}/download`);
  // Read what has come, and keep the download open (breaking out of the body would abort it).
  await new Promise<void>((resolve) => {
    let received = 0;
    res.body.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= 4096) resolve();
    });
  });
  // The download is still open: its copy can no longer be compared, and says so now.
  await vi.waitFor(async () => expect(await values(proxy, 'ficus_shadow_comparisons_total')).toEqual({ skipped: 1 }), { timeout: 2_000, interval: 10 });
  expect(held).toHaveLength(1);
});

test('maxConcurrent still bounds the copies out at a hanging shadow once the primary outgrew maxBodyBytes (the comparison is skipped, the copy still out)', async () => {
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
  for (let i = 0; i < 10; i++) await (await request(`${proxy.app.proxyUrl}/dl/${i}`)).body.dump();
  // Copies are admitted or dropped when their request is planned: all ten are decided here.
  expect(await metricBy(proxy.app, 'ficus_shadow_dropped_total', 'reason')).toEqual({ saturated: 8 });
  await vi.waitFor(() => expect(fresh.seen).toHaveLength(2));
});

test("long-lived primary answers (server-sent events) give their copy's place back after the copy's deadline", async () => {
  const open: ServerResponse[] = [];
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    if (req.url?.startsWith('/events')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' }).write('data: hi\n\n');
      return void open.push(res);
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  onTestFinished(() => void open.forEach((res) => res.destroy()));
  const fresh = await startUpstream('fresh', (req, res) => void req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')));
  const proxy = await startProxy(shadowRoutesYaml(legacy.url, fresh.url, ', maxConcurrent: 2, timeout: 300ms', 'drainTimeout: 300ms\n'));
  for (let i = 0; i < 2; i++) {
    const res = await request(`${proxy.app.proxyUrl}/events/${i}`);
    res.body.on('data', () => undefined).on('error', () => undefined);
  }
  // The shadow answered both at once; 300 ms later the streams still run, and both are given up.
  await vi.waitFor(async () => expect(await metricBy(proxy.app, 'ficus_shadow_comparisons_total', 'result')).toEqual({ skipped: 2 }), { timeout: 3_000 });
  for (let i = 0; i < 3; i++) await (await request(`${proxy.app.proxyUrl}/orders/${i}`)).body.dump();
  await vi.waitFor(async () => expect((await metricBy(proxy.app, 'ficus_shadow_comparisons_total', 'result')).match).toBe(3));
  expect(await metricBy(proxy.app, 'ficus_shadow_dropped_total', 'reason')).toEqual({});
});
