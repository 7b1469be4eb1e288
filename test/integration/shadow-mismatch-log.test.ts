import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { request } from 'undici';
import { expect, test, vi } from 'vitest';
import { routesYaml, startProxy, type LogLine, type TestProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';
import { metricSum } from '../helpers/metrics.js';

/**
 * A mismatch is logged as `shadow.mismatch`, sampled per route and size-capped, naming what
 * differs — status, header names, JSON paths with the types of their values, digests of other
 * bodies — and never a value: response values carry tokens, cookies and user ids.
 */

function answering(headers: OutgoingHttpHeaders, body: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, headers).end(body));
  };
}

async function mismatching(primary: [OutgoingHttpHeaders, string], shadow: [OutgoingHttpHeaders, string]): Promise<TestProxy> {
  const legacy = await startUpstream('legacy', answering(...primary));
  const fresh = await startUpstream('fresh', answering(...shadow));
  return startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  fresh: { url: ${fresh.url} }
routes:
  - { name: account, match: { path: / }, to: legacy, shadow: { to: fresh, compare: true } }
`),
  );
}

const mismatches = (proxy: TestProxy): Promise<number> => metricSum(proxy.app, 'ficus_shadow_comparisons_total', { result: 'mismatch' });

const mismatchLines = (proxy: TestProxy): LogLine[] => proxy.logs.filter((line) => line.event === 'shadow.mismatch');

test('a JSON mismatch names the paths and value types, and no secret from either answer reaches the log', async () => {
  const json = { 'content-type': 'application/json' };
  const primary = { user: { id: 'u-1', token: 'SECRET-PRIMARY-TOKEN' }, balances: { 'alice@example.com': 10 }, tags: ['a'] };
  const shadow = { user: { id: 'u-1', token: 'SECRET-SHADOW-TOKEN', plan: 'gold' }, balances: { 'alice@example.com': '10' }, tags: [] };
  const proxy = await mismatching([{ ...json, 'x-session': 'SECRET-PRIMARY-SESSION' }, JSON.stringify(primary)], [{ ...json, 'x-session': 'SECRET-SHADOW-SESSION' }, JSON.stringify(shadow)]);
  const res = await request(`${proxy.app.proxyUrl}/me`, { headers: { 'x-request-id': 'req-42', authorization: 'Bearer SECRET-CLIENT-TOKEN', cookie: 'sid=SECRET-COOKIE' } });
  expect(await res.body.json()).toEqual(primary);
  await vi.waitFor(() => expect(mismatchLines(proxy)).toHaveLength(1));
  expect(mismatchLines(proxy)[0]).toMatchObject({
    route: 'account',
    shadow: 'fresh',
    requestId: 'req-42',
    method: 'GET',
    status: { primary: 200, shadow: 200 },
    headers: ['x-session'],
    body: {
      kind: 'json',
      truncated: false,
      differences: [
        { path: '$.user.token', kind: 'changed', primary: 'string', shadow: 'string' },
        { path: '$.user.plan', kind: 'added', shadow: 'string' },
        // A key that looks like data is written as the wildcard that would ignore it.
        { path: '$.balances.*', kind: 'changed', primary: 'number', shadow: 'string' },
        { path: '$.tags[0]', kind: 'missing', primary: 'string' },
      ],
    },
    suppressed: 0,
  });
  const everything = JSON.stringify(proxy.logs);
  expect(everything).not.toMatch(/SECRET|alice/);
});

test('a mismatch of other bodies gives their sizes and digests, never their bytes', async () => {
  const text = { 'content-type': 'text/plain' };
  const proxy = await mismatching([text, 'pin=SECRET-1234'], [text, 'pin=SECRET-98765']);
  await (await request(`${proxy.app.proxyUrl}/pin`)).body.dump();
  await vi.waitFor(() => expect(mismatchLines(proxy)).toHaveLength(1));
  const line = mismatchLines(proxy)[0] as LogLine & { body: { primary: { digest: string }; shadow: { digest: string } } };
  expect(line).toMatchObject({ headers: [], body: { kind: 'bytes', primary: { bytes: 15 }, shadow: { bytes: 16 } } });
  expect(line.body.primary.digest).toMatch(/^[0-9a-f]{16}$/);
  expect(line.body.shadow.digest).not.toBe(line.body.primary.digest);
  expect(JSON.stringify(proxy.logs)).not.toContain('SECRET');
});

test('a stream of mismatches on one route is logged once per interval, and all are counted', async () => {
  const text = { 'content-type': 'text/plain' };
  const proxy = await mismatching([text, 'one'], [text, 'two']);
  for (let i = 0; i < 3; i++) await (await request(`${proxy.app.proxyUrl}/x`)).body.dump();
  await vi.waitFor(async () => expect(await mismatches(proxy)).toBe(3));
  expect(mismatchLines(proxy)).toHaveLength(1);
});

test('a long JSON difference is capped: at most 20 paths, each at most 200 characters', async () => {
  const json = { 'content-type': 'application/json' };
  // Long keys made of words (bWordWord…), so that none is masked as a token.
  const deep = (leaf: number) => ({ [`b${'Word'.repeat(7)}`]: { [`c${'Word'.repeat(7)}`]: { [`d${'Word'.repeat(7)}`]: { [`f${'Word'.repeat(7)}`]: { [`g${'Word'.repeat(7)}`]: { [`h${'Word'.repeat(7)}`]: { [`j${'Word'.repeat(7)}`]: leaf } } } } } } });
  const primary = { deep: deep(1), list: Array.from({ length: 50 }, (_, i) => i) };
  const shadow = { deep: deep(2), list: Array.from({ length: 50 }, (_, i) => -i - 1) };
  const proxy = await mismatching([json, JSON.stringify(primary)], [json, JSON.stringify(shadow)]);
  await (await request(`${proxy.app.proxyUrl}/big`)).body.dump();
  await vi.waitFor(() => expect(mismatchLines(proxy)).toHaveLength(1));
  const body = mismatchLines(proxy)[0]?.body as { differences: { path: string }[]; truncated: boolean };
  expect(body.truncated).toBe(true);
  expect(body.differences).toHaveLength(20);
  expect(body.differences[0]?.path).toHaveLength(200);
  expect(body.differences[0]?.path.endsWith('…')).toBe(true);
  expect(body.differences[1]?.path).toBe('$.list[0]');
});

test('keys that are the caller\'s own id, or a session token, are never named by the mismatch line', async () => {
  const token = 'kQzXbVtPwRjLmNsYhGfDaE';
  const json = { 'content-type': 'application/json' };
  // A map keyed by the user id ficus itself reads (identity header), and one keyed by a token.
  const primary = { balances: { alice: 10 }, sessions: { [token]: { active: true } } };
  const shadow = { balances: { alice: '10' }, sessions: { [token]: { active: 'yes' } } };
  const legacy = await startUpstream('legacy', answering(json, JSON.stringify(primary)));
  const fresh = await startUpstream('fresh', answering(json, JSON.stringify(shadow)));
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id }
services:
  legacy: { url: ${legacy.url} }
  fresh: { url: ${fresh.url} }
routes:
  - { name: account, match: { path: / }, to: legacy, shadow: { to: fresh, compare: true } }
`),
  );
  // Sent twice, the identity header reaches ficus joined: `alice, alice`.
  await (await request(`${proxy.app.proxyUrl}/me`, { headers: ['x-user-id', 'alice', 'x-user-id', 'alice'] })).body.dump();
  await vi.waitFor(() => expect(mismatchLines(proxy)).toHaveLength(1));
  const paths = (mismatchLines(proxy)[0]?.body as { differences: { path: string }[] }).differences.map((d) => d.path);
  expect(paths.sort()).toEqual(['$.balances.*', '$.sessions.*.active']);
  const text = JSON.stringify(proxy.logs);
  expect(text).not.toContain(token);
  expect(text).not.toContain('alice');
});
