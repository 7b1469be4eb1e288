import { request } from 'undici';
import { expect, test } from 'vitest';
import { bucketOf } from '../../src/routing/bucket.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Issue 3 item 1 through the real proxy: who the caller is (header → cookie → anonymous cookie),
 * the anonymous sticky cookie and its attributes, and that the cookie keeps a caller's side.
 */

const COOKIE = /^ficus_uid=([A-Za-z0-9._~-]+); Path=\/; Max-Age=31536000; HttpOnly; SameSite=Lax(; Secure)?$/;

interface Options {
  anonymousCookie?: boolean;
  trusted?: boolean;
}

async function setup({ anonymousCookie = true, trusted = false }: Options = {}) {
  const legacy = await startUpstream('legacy');
  const v2 = await startUpstream('v2');
  const proxy = await startProxy(
    routesYaml(`identity: { header: x-user-id, cookie: uid${anonymousCookie ? ', anonymousCookie: ficus_uid' : ''} }
${trusted ? 'trustedProxies: [127.0.0.1/32]\n' : ''}services:
  legacy: { url: ${legacy.url} }
  v2: { url: ${v2.url} }
toggles:
  for-alice: { users: [alice] }
  for-bob: { users: [bob] }
  for-jose: { users: ["josé"] }
routes:
  - { name: paused, match: { path: /paused }, respond: { status: 503, body: paused } }
  - { name: search, match: { path: /search }, to: legacy, canary: { to: v2, weight: 50 } }
`),
  );
  return { proxy, legacy, v2 };
}

interface Answer {
  status: number;
  served: string | undefined;
  setCookie: string[];
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(url, { headers });
  await res.body.dump();
  const raw = res.headers['set-cookie'];
  const setCookie = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return { status: res.statusCode, served: res.headers['x-upstream'] as string | undefined, setCookie };
}

const ours = (answer: Answer) => answer.setCookie.filter((c) => c.startsWith('ficus_uid='));
const togglesSeen = (upstream: Upstream) => upstream.seen.at(-1)?.headers['x-ficus-toggles'];
const sideOf = (id: string) => (bucketOf('search', id) < 5000 ? 'v2' : 'legacy');

test('the user is read from the header first, then the cookie; a known user gets no cookie', async () => {
  const { proxy, legacy, v2 } = await setup();
  const url = `${proxy.app.proxyUrl}/search`;
  const cases: [Record<string, string>, string, string][] = [
    [{ 'x-user-id': 'alice', cookie: 'uid=bob; ficus_uid=anon-1' }, 'alice', 'for-alice'],
    [{ cookie: 'ficus_uid=anon-1; uid=bob' }, 'bob', 'for-bob'],
    [{ 'x-user-id': '', cookie: 'uid=bob' }, 'bob', 'for-bob'],
  ];
  for (const [headers, id, toggle] of cases) {
    const answer = await get(url, headers);
    expect(answer).toEqual({ status: 200, served: sideOf(id), setCookie: [] });
    expect(togglesSeen(answer.served === 'v2' ? v2 : legacy)).toBe(toggle);
  }
});

test('an anonymous caller gets a random sticky id cookie, on proxied and on locally answered responses', async () => {
  const { proxy } = await setup();
  const ids = new Set<string>();
  for (const [path, status] of [['/search', 200], ['/paused', 503], ['/nowhere', 404]] as const) {
    const answer = await get(`${proxy.app.proxyUrl}${path}`);
    expect(answer.status).toBe(status);
    expect(answer.setCookie).toHaveLength(1);
    const [cookie] = answer.setCookie;
    expect(cookie).toMatch(COOKIE);
    expect(cookie).not.toContain('Secure');
    ids.add(COOKIE.exec(cookie as string)?.[1] as string);
  }
  expect(ids.size).toBe(3);
});

test('re-sending the cookie keeps the caller on the same side, and no new cookie is set', async () => {
  const { proxy } = await setup();
  const url = `${proxy.app.proxyUrl}/search`;
  const sides = new Set<string>();
  for (let caller = 0; caller < 30; caller++) {
    // Half the callers first land on a page ficus answers itself: the id given there sticks too.
    const first = await get(caller % 2 === 0 ? url : `${proxy.app.proxyUrl}/paused`);
    const id = COOKIE.exec(ours(first)[0] ?? '')?.[1];
    expect(id).toBeDefined();
    const expected = sideOf(id as string);
    if (caller % 2 === 0) expect(first.served).toBe(expected);
    for (let again = 0; again < 3; again++) {
      const next = await get(url, { cookie: `theme=dark; ficus_uid=${id}` });
      expect(next).toEqual({ status: 200, served: expected, setCookie: [] });
    }
    sides.add(expected);
  }
  // Thirty fresh ids at 50 % all on one side would mean the ids are not random.
  expect(sides).toEqual(new Set(['legacy', 'v2']));
});

test.each([
  ['empty', 'ficus_uid='],
  ['with a space', 'ficus_uid="two words"'],
  ['with markup', 'ficus_uid=<b>'],
  ['too long', `ficus_uid=${'a'.repeat(129)}`],
])('a malformed anonymous cookie (%s) is replaced by a fresh id', async (_name, cookie) => {
  const { proxy } = await setup();
  const answer = await get(`${proxy.app.proxyUrl}/search`, { cookie });
  const id = COOKIE.exec(ours(answer)[0] ?? '')?.[1];
  expect(id).toMatch(/^[A-Za-z0-9._~-]{1,128}$/);
  expect(answer.served).toBe(sideOf(id as string));
});

test.each([
  { name: 'a trusted proxy says https', trusted: true, proto: 'https', secure: true },
  { name: 'a trusted proxy says http', trusted: true, proto: 'http', secure: false },
  { name: 'a trusted proxy says nothing', trusted: true, proto: undefined, secure: false },
  { name: 'an untrusted client claims https', trusted: false, proto: 'https', secure: false },
  // The scheme is case-insensitive, and the first of a list is the client's (what goes upstream).
  { name: 'a trusted proxy says HTTPS', trusted: true, proto: 'HTTPS', secure: true },
  { name: 'a trusted proxy says https, http', trusted: true, proto: 'https, http', secure: true },
  { name: 'a trusted proxy says http, https', trusted: true, proto: 'http, https', secure: false },
])('the cookie is Secure only when the request came over TLS: $name → $secure', async ({ trusted, proto, secure }) => {
  const { proxy } = await setup({ trusted });
  for (const path of ['/search', '/paused']) {
    const answer = await get(`${proxy.app.proxyUrl}${path}`, proto === undefined ? {} : { 'x-forwarded-proto': proto });
    const [cookie] = ours(answer);
    expect(cookie).toMatch(COOKIE);
    expect(cookie?.endsWith('; Secure')).toBe(secure);
  }
});

test("the upstream's own Set-Cookie reaches the client next to ficus's", async () => {
  const legacy = await startUpstream('legacy', (_req, res) => {
    res.writeHead(200, [['set-cookie', 'session=s1; Path=/'], ['set-cookie', 'lang=en']].flat());
    res.end('ok');
  });
  const proxy = await startProxy(
    routesYaml(`identity: { anonymousCookie: ficus_uid }
services: { legacy: { url: ${legacy.url} } }
routes: [{ name: rest, match: { path: / }, to: legacy }]
`),
  );
  const answer = await get(`${proxy.app.proxyUrl}/`);
  expect(answer.setCookie).toHaveLength(3);
  expect(answer.setCookie.slice(0, 2)).toEqual(['session=s1; Path=/', 'lang=en']);
  expect(answer.setCookie[2]).toMatch(COOKIE);
});

test('a user id sent as UTF-8 is that user: listed users match and it buckets as its UTF-8 bytes', async () => {
  const { proxy, legacy, v2 } = await setup();
  // HTTP carries bytes; a JS string given to the client is written one byte per character.
  const wire = Buffer.from('josé', 'utf8').toString('latin1');
  const answer = await get(`${proxy.app.proxyUrl}/search`, { 'x-user-id': wire });
  expect(answer.served).toBe(sideOf('josé'));
  expect(togglesSeen(answer.served === 'v2' ? v2 : legacy)).toBe('for-jose');
});

test('without anonymousCookie and without a user, every request is a fresh draw and no cookie is set', async () => {
  const { proxy } = await setup({ anonymousCookie: false });
  const served = new Set<string | undefined>();
  for (let i = 0; i < 64 && served.size < 2; i++) {
    const answer = await get(`${proxy.app.proxyUrl}/search`, { cookie: 'ficus_uid=sticky-1' });
    expect(answer.setCookie).toEqual([]);
    served.add(answer.served);
  }
  // One caller, same request each time: both sides seen (all 64 alike: a chance of 2^-63).
  expect(served).toEqual(new Set(['legacy', 'v2']));
});

test('error answers carry the new id too, so the caller keeps the bucket it was decided with', async () => {
  const down = await refusedPort();
  const proxy = await startProxy(
    routesYaml(`identity: { anonymousCookie: ficus_uid }
limits: { maxBodyBytes: 1024 }
services: { down: { url: http://127.0.0.1:${down} } }
routes: [{ name: rest, match: { path: / }, to: down }]
`),
  );
  const badGateway = await get(`${proxy.app.proxyUrl}/`);
  expect(badGateway.status).toBe(502);
  expect(ours(badGateway)[0]).toMatch(COOKIE);

  const res = await request(`${proxy.app.proxyUrl}/`, { method: 'POST', body: 'x'.repeat(2048) });
  await res.body.dump();
  expect(res.statusCode).toBe(413);
  expect(res.headers['set-cookie']).toMatch(COOKIE);
});
