import { describe, expect, test } from 'vitest';
import { formatIssue } from '../../../src/config/issues.js';
import { parseRoutes } from '../../../src/config/load.js';

/**
 * Cross-reference checks: each case is one file (line 1 is `version: 1`, services from line 2)
 * and the exact lines `ficus check` prints for it.
 */
function errors(body: string): string[] {
  const loaded = parseRoutes(`version: 1\n${body}`, 'r.yaml', {});
  return loaded.ok ? [] : loaded.issues.map(formatIssue);
}

const LEGACY = 'services:\n  legacy: { url: http://127.0.0.1:3001 }\n';
const route = (yaml: string) => `${LEGACY}routes:\n  - ${yaml}\n`;

describe('routes', () => {
  test.each([
    ['`to` names no service', route('{ name: a, match: {}, to: legacy2 }'), ['r.yaml:5:31 routes.0.to: unknown service "legacy2"']],
    ['route names are unique', `${LEGACY}routes:\n  - { name: a, match: {}, to: legacy }\n  - { name: b, match: {}, to: legacy }\n  - { name: a, match: {}, to: legacy }\n`,
      ['r.yaml:7:13 routes.2.name: duplicate route name "a" (also routes.0)']],
    ['neither `to` nor `respond`', route('{ name: a, match: {} }'), ['r.yaml:5:5 routes.0: a route needs exactly one of "to" or "respond"']],
    ['both `to` and `respond`', route('{ name: a, match: {}, to: legacy, respond: { status: 204 } }'), ['r.yaml:5:5 routes.0: a route needs exactly one of "to" or "respond"']],
    ['`rewrite` on a `respond` route', route('{ name: a, match: {}, respond: { status: 204 }, rewrite: { addPrefix: /x } }'),
      ['r.yaml:5:53 routes.0.rewrite: a "respond" route forwards nothing to rewrite']],
    ['a regex that does not compile', route('{ name: a, match: { regex: "a(" }, to: legacy }'),
      ['r.yaml:5:32 routes.0.match.regex: invalid regular expression /a(/: Unterminated group']],
    ['a header regex that does not compile', route('{ name: a, match: { headers: { x-a: { regex: "[" } } }, to: legacy }'),
      ['r.yaml:5:50 routes.0.match.headers.x-a.regex: invalid regular expression /[/: Unterminated character class']],
    ['a regex on a secret-looking header does not repeat itself in the error (it reaches logs and /status)', route('{ name: a, match: { headers: { authorization: { regex: "(Bearer s3cret" } } }, to: legacy }'),
      ['r.yaml:5:60 routes.0.match.headers.authorization.regex: invalid regular expression /<redacted>/: Unterminated group']],
    // Only what V8's linear-time engine can run: no request may make a match backtrack for ever.
    ['a regex with a backreference', route('{ name: a, match: { regex: "^/(a)\\\\1" }, to: legacy }'),
      ['r.yaml:5:32 routes.0.match.regex: /^/(a)\\1/ cannot be matched in linear time (it has a backreference or a lookahead/lookbehind), so a request could make it stall the proxy']],
    ['a counted repetition over 16 (which the linear engine declines) is no error', route('{ name: a, match: { regex: "^/orders/[0-9a-f-]{36}/receipt$" }, to: legacy }'), []],
    ['a header regex with a lookahead', route('{ name: a, match: { headers: { x-a: { regex: "^(?=v2)" } } }, to: legacy }'),
      ['r.yaml:5:50 routes.0.match.headers.x-a.regex: /^(?=v2)/ cannot be matched in linear time (it has a backreference or a lookahead/lookbehind), so a request could make it stall the proxy']],
    ['a respond header that frames the answer a second time', route('{ name: a, match: {}, respond: { status: 200, body: hi, headers: { Transfer-Encoding: chunked, content-length: "2", x-ok: "1" } } }'),
      ['r.yaml:5:72 routes.0.respond.headers.Transfer-Encoding: ficus frames its own answer: "Transfer-Encoding" cannot be set here',
        'r.yaml:5:100 routes.0.respond.headers.content-length: ficus frames its own answer: "content-length" cannot be set here']],
    ['a key named __proto__, which the schema would drop (so the condition would hold for every request)', route('{ name: a, match: { path: /, query: { __proto__: secret } }, to: legacy }'),
      ['r.yaml:5:43 routes.0.match.query.__proto__: a key named "__proto__" would be dropped by the JavaScript that reads the file; rename it']],
    ['a path written with dot segments', route('{ name: a, match: { path: /api/./v1 }, to: legacy }'),
      ['r.yaml:5:31 routes.0.match.path: "/api/./v1" is not a normalized path (write "/api/v1")']],
    ['an exact path with a double slash', route('{ name: a, match: { exact: //api }, to: legacy }'),
      ['r.yaml:5:32 routes.0.match.exact: "//api" is not a normalized path (write "/api")']],
    ['a path with an encoded dot', route('{ name: a, match: { path: /%2e%2e/api }, to: legacy }'),
      ['r.yaml:5:31 routes.0.match.path: "/%2e%2e/api" is not a normalized path (write "/api")']],
    ['a path with a malformed escape', route('{ name: a, match: { path: /a%zz }, to: legacy }'),
      ['r.yaml:5:31 routes.0.match.path: "/a%zz": malformed percent-encoding in path']],
    ['a respond header value with a line break (response splitting)', route('{ name: a, match: {}, respond: { status: 200, headers: { x-a: "1\\r\\nset-cookie: a=b" } } }'),
      ['r.yaml:5:67 routes.0.respond.headers.x-a: a header value holds tabs, spaces and Latin-1 text only: no control characters such as a line break, and no character beyond Latin-1 such as "€"']],
    ['a path with a parameter, which a request could never be matched by', route('{ name: a, match: { exact: "/cars;color=red" }, to: legacy }'),
      ['r.yaml:5:32 routes.0.match.exact: "/cars;color=red": a path parameter (";") cannot be matched: ficus reads a path\'s parameters as the path without them']],
    ['methods no request reaches a route with', route('{ name: a, match: { methods: [GET, TRACE, FOO] }, to: legacy }'),
      ['r.yaml:5:40 routes.0.match.methods.1: TRACE is refused with 405 before any route is looked for', 'r.yaml:5:47 routes.0.match.methods.2: ficus\'s HTTP parser refuses the method FOO with 400 before any route is looked for']],
    ['a rewrite prefix with dot segments', route('{ name: a, match: {}, to: legacy, rewrite: { stripPrefix: /a/../b } }'),
      ['r.yaml:5:63 routes.0.rewrite.stripPrefix: "/a/../b" is not a normalized path (write "/b")']],
  ])('%s', (_name, body, expected) => {
    expect(errors(body)).toEqual(expected);
  });
});

describe('match.host patterns', () => {
  test.each(['api.example.com', '*.example.com', 'localhost', '127.0.0.1', '::1', '[::1]', 'API.Example.COM'])('%s is accepted', (host) => {
    expect(errors(route(`{ name: a, match: { host: "${host}" }, to: legacy }`))).toEqual([]);
  });
  test.each(['example.com:8080', '*example.com', 'a.*.example.com', '*.', 'exa mple.com', 'https://example.com', '*'])('%s is refused', (host) => {
    expect(errors(route(`{ name: a, match: { host: "${host}" }, to: legacy }`))).toEqual([
      `r.yaml:5:31 routes.0.match.host: "${host}" is not a host name or *.domain pattern (without port)`,
    ]);
  });
});

describe('rewrite.host: the Host the upstream receives', () => {
  test.each(['api.internal', 'api.internal:8080', '10.0.0.1', '[::1]:8080', 'API.Internal'])('%s is accepted', (host) => {
    expect(errors(route(`{ name: a, match: {}, to: legacy, rewrite: { host: "${host}" } }`))).toEqual([]);
  });
  // Each would make every request on the route fail (undici refuses the header), or send an invalid Host.
  test.each(['a b', 'bäckend.intern', 'backend.internal\\nx-evil: 1', '', 'http://api.internal', 'api.internal:port'])('%j is refused', (host) => {
    expect(errors(route(`{ name: a, match: {}, to: legacy, rewrite: { host: "${host}" } }`))).toEqual([
      expect.stringMatching(/^r\.yaml:5:\d+ routes\.0\.rewrite\.host: expected a host\[:port\] such as api\.internal or api\.internal:8080$/),
    ]);
  });
});

describe('trustedProxies', () => {
  test('addresses and CIDRs of both families are accepted', () => {
    expect(errors(`${LEGACY}routes: []\ntrustedProxies: [10.0.0.0/8, 192.168.1.7, "::1", "fd00::/8", 0.0.0.0/0]\n`)).toEqual([]);
  });
  test('each malformed entry is reported at its position', () => {
    expect(errors(`${LEGACY}routes: []\ntrustedProxies:\n  - 10.0.0.0/33\n  - 10.0.0.0/8\n  - 10.0.0/8\n  - "fd00::/129"\n  - 10.0.0.0/x\n`)).toEqual([
      'r.yaml:6:5 trustedProxies.0: "10.0.0.0/33" is not an IP address or CIDR such as 10.0.0.0/8',
      'r.yaml:8:5 trustedProxies.2: "10.0.0/8" is not an IP address or CIDR such as 10.0.0.0/8',
      'r.yaml:9:5 trustedProxies.3: "fd00::/129" is not an IP address or CIDR such as 10.0.0.0/8',
      'r.yaml:10:5 trustedProxies.4: "10.0.0.0/x" is not an IP address or CIDR such as 10.0.0.0/8',
    ]);
  });
  test('an address with a zone is refused: the zone would be ignored, trusting the address on every interface', () => {
    expect(errors(`${LEGACY}routes: []\ntrustedProxies: ["fe80::1%eth0"]\n`)).toEqual([
      'r.yaml:5:18 trustedProxies.0: "fe80::1%eth0" names a zone (%eth0), which ficus cannot match: write the address alone, which trusts it on every interface',
    ]);
  });
  test('an entry with address bits set past its prefix is refused, with the network and the address it may mean', () => {
    expect(errors(`${LEGACY}routes: []\ntrustedProxies: [10.0.0.1/8, "fd00::1/64", 10.0.0.1/32]\n`)).toEqual([
      'r.yaml:5:18 trustedProxies.0: "10.0.0.1/8" has address bits set past its /8 prefix: write 10.0.0.0/8 for the network, or 10.0.0.1 alone for one address',
      'r.yaml:5:30 trustedProxies.1: "fd00::1/64" has address bits set past its /64 prefix: write fd00::/64 for the network, or fd00::1 alone for one address',
    ]);
  });
});

describe('admin listener: a non-loopback host needs a token', () => {
  test.each(['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1', '::ffff:7f00:1'])('%s without a token is accepted', (host) => {
    expect(errors(`admin: { host: "${host}" }\n${LEGACY}routes: []\n`)).toEqual([]);
  });
  test.each(['0.0.0.0', '::', '10.1.2.3', 'ficus.internal', '128.0.0.1', '::2', '::ffff:10.0.0.1'])('%s without a token is refused', (host) => {
    expect(errors(`admin: { host: "${host}" }\n${LEGACY}routes: []\n`)).toEqual([
      `r.yaml:2:16 admin.host: admin listener on non-loopback host ${host} needs admin.token`,
    ]);
  });
  test('an empty token from an unset variable counts as none', () => {
    expect(errors(`admin: { host: 0.0.0.0, token: "\${env:FICUS_UNSET_TOKEN:-}" }\n${LEGACY}routes: []\n`)).toEqual([
      'r.yaml:2:16 admin.host: admin listener on non-loopback host 0.0.0.0 needs admin.token',
    ]);
  });
  test('a token makes any host acceptable', () => {
    expect(errors(`admin: { host: 0.0.0.0, token: s3cret }\n${LEGACY}routes: []\n`)).toEqual([]);
  });
  // Sent as `Authorization: Bearer <token>`: anything else could never be presented, and would
  // lock every POST out without a word.
  test.each([' padded ', '   ', 'pässwörd', 'line\nbreak', 'trailing\n'])('a token no client could send (%j) is refused', (token) => {
    expect(errors(`admin: { host: 127.0.0.1, token: ${JSON.stringify(token)} }\n${LEGACY}routes: []\n`)).toEqual([
      expect.stringMatching(/^r\.yaml:2:\d+ admin\.token: an admin token is printable ASCII with no space at either end/),
    ]);
  });
});

test('a service URL with credentials and another mistake never quotes the password', () => {
  const lines = errors(`services:\n  legacy: { url: "http://deploy:Hunter2@legacy.internal:80800" }\nroutes: []\n`);
  expect(lines).toEqual(['r.yaml:3:18 services.legacy.url: a service URL must not contain credentials (user:password@)']);
});

describe('services', () => {
  test.each([
    ['both url and urls', '  s: { url: http://127.0.0.1:1, urls: [http://127.0.0.1:2] }\n', ['r.yaml:3:3 services.s: a service needs exactly one of "url" or "urls"']],
    ['neither url nor urls', '  s: { balance: round-robin }\n', ['r.yaml:3:3 services.s: a service needs exactly one of "url" or "urls"']],
    ['user and password in a URL', '  s: { url: "http://user:pw@127.0.0.1:1" }\n', ['r.yaml:3:13 services.s.url: a service URL must not contain credentials (user:password@)']],
    ['a user alone in a URL', '  s: { urls: ["http://127.0.0.1:2", "https://user@example.com"] }\n', ['r.yaml:3:37 services.s.urls.1: a service URL must not contain credentials (user:password@)']],
    ['a port out of range', '  s: { url: "http://127.0.0.1:70000" }\n', ['r.yaml:3:13 services.s.url: "http://127.0.0.1:70000" is not a valid URL']],
    ['a URL with a query', '  s: { url: "http://127.0.0.1:1/?a=1" }\n', ['r.yaml:3:13 services.s.url: expected an http:// or https:// URL such as http://127.0.0.1:3001']],
    ['an empty urls list', '  s: { urls: [] }\n', ['r.yaml:3:14 services.s.urls: needs at least 1 item(s)']],
  ])('%s', (_name, service, expected) => {
    expect(errors(`services:\n${service}routes: []\n`)).toEqual(expected);
  });
});

test.each([
  ['a double slash', 'legacy: { url: "http://127.0.0.1:3001//" }', 'r.yaml:3:18 services.legacy.url: the URL\'s path "//" is not a normalized path (write "/")'],
  ['a malformed escape', 'legacy: { urls: [http://127.0.0.1:3001/a%zz] }', 'r.yaml:3:20 services.legacy.urls.0: the URL\'s path "/a%zz": malformed percent-encoding in path'],
  ['an encoded slash, in a colour', 'legacy: { blue: { url: http://127.0.0.1:3001/a%2Fb }, green: { url: http://127.0.0.1:3002 }, active: blue }', 'r.yaml:3:26 services.legacy.blue.url: the URL\'s path "/a%2Fb" is not a normalized path (write "/a/b")'],
])("a service URL's path is checked as a client's path would be: %s", (_name, service, issue) => {
  const loaded = parseRoutes(`version: 1\nservices:\n  ${service}\nroutes: []\n`, 'r.yaml', {});
  const issues = loaded.ok ? [] : loaded.issues.map(formatIssue);
  expect(issues).toHaveLength(1);
  expect(issues[0]).toContain(issue);
});

test('a service, cohort or toggle name may not be a whole number, which JavaScript would move to the front', () => {
  const loaded = parseRoutes('version: 1\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\ntoggles:\n  zeta: { enabled: true }\n  "2": { enabled: true }\n  v10: { enabled: true }\nroutes: []\n', 'r.yaml', {});
  expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([
    'r.yaml:6:3 toggles.2: invalid name "2": a name here may not be a whole number (JavaScript would move it to the front): add a letter, as in "v10"',
  ]);
});

test('a duration longer than a timer can wait is refused (it would fire at once), up to 596h is fine', () => {
  const issues = (text: string) => {
    const loaded = parseRoutes(text, 'r.yaml', {});
    return loaded.ok ? [] : loaded.issues.map(formatIssue);
  };
  expect(issues(`version: 1\ndrainTimeout: 1000h\n${LEGACY}routes: []\n`)).toEqual(['r.yaml:2:15 drainTimeout: at most 596h (24.8 days), the longest a timer can wait']);
  expect(issues(`version: 1\ndrainTimeout: 596h\n${LEGACY}routes: []\n`)).toEqual([]);
  expect(issues(`version: 1\ndrainTimeout: 10x\n${LEGACY}routes: []\n`)).toEqual(['r.yaml:2:15 drainTimeout: expected a duration such as 250ms, 10s, 5m or 1h']);
});

describe('blue/green preview door', () => {
  const colours = (preview: string) =>
    `services:\n  legacy:\n    blue: { url: http://127.0.0.1:3001 }\n    green: { url: http://127.0.0.1:3002 }\n    active: blue\n    preview: ${preview}\nroutes: []\n`;
  test.each(['x-forwarded-preview', 'X_Forwarded_For', 'forwarded', 'x-real-ip'])('a forwarding field (%s) is refused: ficus believes it from trusted proxies only', (name) => {
    expect(errors(colours(`{ header: ${name}, token: "" }`))).toEqual([
      `r.yaml:7:24 services.legacy.preview.header: "${name}" is a forwarding field, which ficus believes from trustedProxies only; use a header of its own, such as x-ficus-preview`,
    ]);
  });
  test.each(['cookie', 'Authorization', 'connection'])('a header clients send for other reasons (%s) is refused: ficus removes it from every request', (name) => {
    expect(errors(colours(`{ header: ${name}, token: "" }`))).toEqual([
      `r.yaml:7:24 services.legacy.preview.header: "${name}" is a field clients send for other reasons, and ficus removes the preview header from every request to every service; use a header of its own, such as x-ficus-preview`,
    ]);
  });
  test('a token with a space at either end is refused: Node trims field values, so no client could send it', () => {
    expect(errors(colours('{ header: x-preview, token: " s3cret" }'))).toEqual([
      'r.yaml:7:42 services.legacy.preview.token: a preview token has no space at either end (a client could not send it otherwise)',
    ]);
  });
  test('a header of its own and a plain token are accepted', () => {
    expect(errors(colours('{ header: x-orders-preview, token: "s3cret" }'))).toEqual([]);
  });
});

test('the anonymous id cannot share the cookie a known user\'s id is read from', () => {
  expect(errors(`identity: { cookie: uid, anonymousCookie: uid }\n${LEGACY}routes: []\n`)).toEqual([
    'r.yaml:2:43 identity.anonymousCookie: "uid" is already identity.cookie, the cookie a known user\'s id is read from; give the anonymous id a cookie of its own',
  ]);
  expect(errors(`identity: { cookie: uid, anonymousCookie: ficus_uid }\n${LEGACY}routes: []\n`)).toEqual([]);
});

describe('what no request could ever match or would be sent twice', () => {
  const shadowed = `services:\n  legacy: { url: http://127.0.0.1:3001 }\n  next: { url: http://127.0.0.1:3002 }\nroutes:\n  - { name: a, match: {}, to: legacy, canary: { to: next, weight: 10 }, shadow: { to: next } }\n`;
  test.each([
    ['a path regex with a character a path only holds encoded', route('{ name: a, match: { regex: "^/café(/|$)" }, to: legacy }'), 'r.yaml:5:32 routes.0.match.regex: the pattern needs "é", which a path only holds percent-encoded (routes see the path normalized, as forwarded): write %C3%A9'],
    ['a path regex with a space', route('{ name: a, match: { regex: "^/secret report" }, to: legacy }'), 'r.yaml:5:32 routes.0.match.regex: the pattern needs " ", which a path only holds percent-encoded (routes see the path normalized, as forwarded): write %20'],
    ['a path regex with an escape ficus decodes', route('{ name: a, match: { regex: "^/%7Eadmin" }, to: legacy }'), 'r.yaml:5:32 routes.0.match.regex: the pattern needs %7E, which the path never holds: ficus decodes it to "~" before matching'],
    ['a path regex with a character beyond the BMP, its UTF-8 in the advice', route('{ name: a, match: { regex: "^/emoji/😀$" }, to: legacy }'), 'r.yaml:5:32 routes.0.match.regex: the pattern needs "😀", which a path only holds percent-encoded (routes see the path normalized, as forwarded): write %F0%9F%98%80'],
    ['a path regex with a character the normalizer refuses unencoded', route('{ name: a, match: { regex: "^/x#y" }, to: legacy }'), 'r.yaml:5:32 routes.0.match.regex: the pattern needs "#", which a path only holds percent-encoded (routes see the path normalized, as forwarded): write %23'],
    ['a path regex with a lower-case escape', route('{ name: a, match: { regex: "^/caf%c3%a9" }, to: legacy }'), 'r.yaml:5:32 routes.0.match.regex: the pattern needs %c3, which the path never holds: escapes are matched in upper case (%C3)'],
    ['header conditions on one field in two cases', route('{ name: a, match: { headers: { X-Beta: "1", x-beta: "true" } }, to: legacy }'), 'r.yaml:5:57 routes.0.match.headers.x-beta: "x-beta" is the header "X-Beta" again (header names are case-insensitive): both conditions must hold on one value; keep one'],
    ['a respond header set twice in two cases', route('{ name: a, match: {}, respond: { status: 200, headers: { Cache-Control: no-store, cache-control: public } } }'), 'r.yaml:5:102 routes.0.respond.headers.cache-control: "cache-control" is the header "Cache-Control" again (header names are case-insensitive): only one of the values is sent; keep one'],
    ['a shadow that is the route’s canary', shadowed, "r.yaml:6:87 routes.0.shadow.to: the shadow is the same service as the route's canary"],
    ['a health path that cannot go on a request line', `services:\n  legacy: { url: http://127.0.0.1:3001, health: { path: /héalth } }\nroutes:\n  - { name: a, match: {}, to: legacy }\n`, 'r.yaml:3:57 services.legacy.health.path: a health path starts with "/" and holds visible ASCII only, no spaces or "#" (percent-encode anything else: é is %C3%A9)'],
  ])('%s', (_, body, expected) => {
    expect(errors(body)).toEqual([expected]);
  });

  test.each([
    ['a regex whose escapes and classes hold only what a path can', route('{ name: a, match: { regex: "^/caf%C3%A9/[^/é]+\\\\.pdf$" }, to: legacy }')],
    ['header conditions on two fields', route('{ name: a, match: { headers: { x-beta: "1", x-gamma: "1" } }, to: legacy }')],
    ['a named group', route('{ name: a, match: { regex: "^/(?<lang>en|fr|de)/docs(/.*)?$" }, to: legacy }')],
    ['an alternative that cannot match beside one that can', route('{ name: a, match: { regex: "(\\\\.\\\\.|%2e%2e|%2E%2E)" }, to: legacy }')],
    ['an escape ficus decodes as one of two alternatives', route('{ name: a, match: { regex: "^/files(/|%2F)" }, to: legacy }')],
    ['an optional character a path never holds', route('{ name: a, match: { regex: "^/caf(é)?e?$" }, to: legacy }')],
  ])('no error: %s', (_, body) => {
    expect(errors(body)).toEqual([]);
  });

  test.each([
    ['the same port on the same host', 'listen: { host: 127.0.0.1, port: 8080 }\nadmin: { host: 127.0.0.1, port: 8080 }\n', ['r.yaml:3:33 admin.port: port 8080 is also listen.port: the admin listener needs a port of its own']],
    ['the admin port on the default listener port, the listener on every address', 'admin: { port: 8080 }\n', ['r.yaml:2:16 admin.port: port 8080 is also listen.port: the admin listener needs a port of its own']],
    ['one port on two addresses', 'listen: { host: 127.0.0.2, port: 8080 }\nadmin: { host: 127.0.0.1, port: 8080 }\n', []],
    ['IPv4’s every address and IPv6 loopback (two families, one port each)', 'listen: { host: 0.0.0.0, port: 8080 }\nadmin: { host: "::1", port: 8080 }\n', []],
    ['both on port 0 (each gets its own)', 'listen: { port: 0 }\nadmin: { port: 0 }\n', []],
  ])('listeners: %s', (_, top, expected) => {
    expect(errors(`${top}${route('{ name: a, match: {}, to: legacy }')}`)).toEqual(expected);
  });

  test('a key written with control characters is printed escaped, on one line', () => {
    const lines = errors(route('{ name: a, match: {}, to: legacy, "x\\r\\ny\\u001b[2J": 1 }'));
    expect(lines).toHaveLength(1);
    expect([...(lines[0] as string)].filter((c) => c === '\r' || c === '\n' || c === '\u001b')).toEqual([]);
    expect(lines[0]).toContain('x\\u000d\\u000ay\\u001b[2J');
  });
});
