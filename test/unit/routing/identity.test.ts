import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, test } from 'vitest';
import { parseRoutes } from '../../../src/config/load.js';
import { cookieValue, fieldText, identify, type IdentityDef } from '../../../src/routing/identity.js';

/** SPEC §1.3 / issue 3 item 1: header, then cookie, then the anonymous sticky cookie. */

const FULL: IdentityDef = { header: 'x-user-id', cookie: 'uid', anonymousCookie: 'ficus_uid' };

/** Fresh ids in sequence, so a test can tell which call produced one. */
function ids(): () => string {
  let n = 0;
  return () => `fresh-${++n}`;
}

describe('first hit wins: header, then cookie, then anonymous cookie', () => {
  test.each<{ name: string; headers: IncomingHttpHeaders; id: string; known: boolean }>([
    { name: 'header beats cookie and anonymous cookie', headers: { 'x-user-id': 'alice', cookie: 'uid=bob; ficus_uid=anon-1' }, id: 'alice', known: true },
    { name: 'cookie beats anonymous cookie', headers: { cookie: 'ficus_uid=anon-1; uid=bob' }, id: 'bob', known: true },
    { name: 'an empty header falls through to the cookie', headers: { 'x-user-id': '', cookie: 'uid=bob' }, id: 'bob', known: true },
    { name: 'an empty cookie falls through to the anonymous cookie', headers: { cookie: 'uid=; ficus_uid=anon-1' }, id: 'anon-1', known: false },
    { name: 'the anonymous cookie names an anonymous caller', headers: { cookie: 'ficus_uid=anon-1' }, id: 'anon-1', known: false },
    { name: 'a quoted cookie value is unquoted', headers: { cookie: 'uid="carol"' }, id: 'carol', known: true },
    { name: 'a cookie value may hold "="', headers: { cookie: 'uid=a=b' }, id: 'a=b', known: true },
    { name: 'a cookie whose name only ends like ours is not ours', headers: { cookie: 'xuid=mallory; uid=bob' }, id: 'bob', known: true },
  ])('$name', ({ headers, id, known }) => {
    expect(identify(FULL, headers, false, ids())).toEqual({ id, known, setCookie: undefined });
  });

  test('each source is used only when configured', () => {
    const headers = { 'x-user-id': 'alice', cookie: 'uid=bob; ficus_uid=anon-1' };
    expect(identify({ ...FULL, header: undefined }, headers, false, ids()).id).toBe('bob');
    expect(identify({ ...FULL, header: undefined, cookie: undefined }, headers, false, ids()).id).toBe('anon-1');
    expect(identify({ header: 'x-other', cookie: undefined, anonymousCookie: undefined }, headers, false, ids())).toEqual({ id: 'fresh-1', known: false, setCookie: undefined });
  });
});

describe('anonymous callers', () => {
  test('without an id, one is drawn and set as a long-lived, HttpOnly, Lax cookie on the whole site', () => {
    const caller = identify(FULL, {}, false, ids());
    expect(caller).toMatchObject({ id: 'fresh-1', known: false });
    expect(caller.setCookie).toBe('ficus_uid=fresh-1; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax');
  });

  test('the cookie is Secure only when the request came over TLS', () => {
    expect(identify(FULL, {}, true, ids()).setCookie).toBe('ficus_uid=fresh-1; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax; Secure');
  });

  test('a caller sending the cookie back keeps its id, and gets no new cookie', () => {
    const first = identify(FULL, {}, false, () => 'f47ac10b-58cc-4372-a567-0e02b2c3d479');
    const again = identify(FULL, { cookie: `theme=dark; ficus_uid=${first.id}` }, false, () => 'other');
    expect(again).toEqual({ id: first.id, known: false, setCookie: undefined });
  });

  test.each([
    ['empty', 'ficus_uid='],
    ['a space inside', 'ficus_uid="a b"'],
    ['markup', 'ficus_uid=<script>'],
    ['non-ASCII', 'ficus_uid=\u00e9t\u00e9'],
    ['a comma', 'ficus_uid=a,b'],
    ['longer than 128 characters', `ficus_uid=${'a'.repeat(129)}`],
  ])('a malformed anonymous cookie (%s) is replaced by a fresh id', (_name, cookie) => {
    const caller = identify(FULL, { cookie }, false, ids());
    expect(caller.id).toBe('fresh-1');
    expect(caller.setCookie).toMatch(/^ficus_uid=fresh-1; /);
  });

  test('a well-formed one up to 128 characters is kept', () => {
    const id = `A-z_0.9~${'x'.repeat(120)}`;
    expect(identify(FULL, { cookie: `ficus_uid=${id}` }, false, ids()).id).toBe(id);
  });

  test('a malformed duplicate before a well-formed one (a parent domain’s, another path’s) does not earn a new id at every request', () => {
    expect(identify(FULL, { cookie: 'ficus_uid=bad!; theme=dark; ficus_uid=anon-7' }, false, ids())).toEqual({ id: 'anon-7', known: false, setCookie: undefined });
  });

  test('without anonymousCookie every request draws a new id and no cookie is set', () => {
    const def = { ...FULL, anonymousCookie: undefined };
    const next = ids();
    const drawn = [1, 2, 3].map(() => identify(def, { cookie: 'ficus_uid=anon-1' }, false, next));
    expect(drawn.map((c) => c.id)).toEqual(['fresh-1', 'fresh-2', 'fresh-3']);
    expect(drawn.every((c) => c.setCookie === undefined && !c.known)).toBe(true);
    expect(identify(undefined, { 'x-user-id': 'alice' }, false, ids())).toEqual({ id: 'fresh-1', known: false, setCookie: undefined });
  });
});

describe('non-ASCII user ids', () => {
  // Node hands header values over as latin1, one character per byte.
  const asReceived = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

  test.each(['josé', '山田太郎', 'Ærøskøbing', '🦊'])('%s sent as UTF-8 is read as that name, not as its bytes', (name) => {
    expect(identify(FULL, { 'x-user-id': asReceived(name) }, false, ids()).id).toBe(name);
    expect(identify(FULL, { cookie: `uid=${asReceived(name)}` }, false, ids()).id).toBe(name);
  });

  test('bytes that are not UTF-8 stay one character per byte', () => {
    expect(fieldText('caf\u00e9')).toBe('caf\u00e9');
    expect(fieldText('plain-ascii')).toBe('plain-ascii');
  });

  test.each(['山田太郎', 'josé', '🦊'])('a header already decoded to text (%s, as explain passes it) is kept as it is', (name) => {
    expect(identify(FULL, { 'x-user-id': name }, false, ids()).id).toBe(name);
  });
});

describe('cookieValue (RFC 6265 §5.4 Cookie header)', () => {
  test.each([
    ['uid=alice', 'alice'],
    ['a=1; uid=alice; b=2', 'alice'],
    ['a=1;uid=alice', 'alice'],
    ['  uid = alice ', 'alice'],
    ['uid=alice; uid=mallory', 'alice'],
    ['flag; uid=alice', 'alice'],
    ['uid=""', ''],
    ['uid', undefined],
    ['uidx=1; xuid=2', undefined],
    ['', undefined],
  ])('%j → %j', (header, value) => {
    expect(cookieValue(header, 'uid')).toBe(value);
  });
});

describe('cookie names in the file', () => {
  const file = (identity: string) =>
    `version: 1\nidentity: ${identity}\nservices: { a: { url: "http://127.0.0.1:1" } }\nroutes: [{ name: r, match: { path: / }, to: a }]\n`;

  // A line break in anonymousCookie made every anonymous proxied request hang: the Set-Cookie
  // line could not be written, and neither could the error answer that carries it.
  test.each(['"ficus\\nuid"', '"two words"', '"a;b"', '"a=b"', '"uid\u00e9"', '""'])('anonymousCookie and cookie %s are refused', (name) => {
    expect(parseRoutes(file(`{ anonymousCookie: ${name} }`), 'routes.yaml', {}).ok).toBe(false);
    expect(parseRoutes(file(`{ cookie: ${name} }`), 'routes.yaml', {}).ok).toBe(false);
  });

  test.each(['ficus_uid', 'uid', '__Host-uid', 'a.b-c'])('%s is accepted', (name) => {
    expect(parseRoutes(file(`{ anonymousCookie: ${name}, cookie: ${name}x }`), 'routes.yaml', {}).ok).toBe(true);
  });
});
