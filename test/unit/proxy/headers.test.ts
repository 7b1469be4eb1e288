import type { IncomingMessage } from 'node:http';
import { expect, test } from 'vitest';
import { acceptRequestId, clientResponseHeaders, upstreamRequestHeaders, type ForwardingContext } from '../../../src/proxy/headers.js';

/** What upstreamRequestHeaders reads of a request: its raw header list and Node's parsed view. */
function incoming(raw: string[]): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    headers[name] = headers[name] === undefined ? (raw[i + 1] as string) : `${headers[name]}, ${raw[i + 1]}`;
  }
  return { rawHeaders: raw, headers } as unknown as IncomingMessage;
}

const CTX: ForwardingContext = { peer: '192.0.2.10', trusted: false, host: 'shop.example', requestId: 'rid-1', hostOverride: undefined };

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

test('end-to-end fields keep their order, case and duplicates; ficus appends its own', () => {
  const out = upstreamRequestHeaders(incoming(['Accept', 'a', 'Cookie', 'x=1', 'X-Dup', '1', 'X-Dup', '2', 'Host', 'shop.example']), CTX);
  expect(pairs(out)).toEqual([
    ['Accept', 'a'],
    ['Cookie', 'x=1'],
    ['X-Dup', '1'],
    ['X-Dup', '2'],
    ['host', 'shop.example'],
    ['x-request-id', 'rid-1'],
    ['x-forwarded-for', '192.0.2.10'],
    ['x-forwarded-proto', 'http'],
    ['x-forwarded-host', 'shop.example'],
    ['forwarded', 'for=192.0.2.10;proto=http;host=shop.example'],
  ]);
});

test('fields named by any Connection header are dropped, whatever their case', () => {
  const out = upstreamRequestHeaders(
    incoming(['Connection', 'keep-alive, X-A', 'connection', 'x-b', 'X-A', '1', 'x-B', '2', 'X-C', '3', 'Keep-Alive', 'timeout=1']),
    CTX,
  );
  expect(pairs(out).map(([n]) => n.toLowerCase())).not.toEqual(expect.arrayContaining(['x-a']));
  expect(pairs(out).map(([n]) => n.toLowerCase())).not.toEqual(expect.arrayContaining(['x-b']));
  expect(pairs(out)[0]).toEqual(['X-C', '3']);
});

test.each([
  { peer: '::ffff:198.51.100.4', xff: '198.51.100.4', node: 'for=198.51.100.4' },
  { peer: '2001:db8::1', xff: '2001:db8::1', node: 'for="[2001:db8::1]"' },
  { peer: '', xff: 'unknown', node: 'for=unknown' },
])('the peer $peer is written as $xff and $node', ({ peer, xff, node }) => {
  const out = new Map(pairs(upstreamRequestHeaders(incoming([]), { ...CTX, peer })));
  expect(out.get('x-forwarded-for')).toBe(xff);
  expect(out.get('forwarded')).toBe(`${node};proto=http;host=shop.example`);
});

test.each([
  { host: 'shop.example:8080', forwarded: 'host="shop.example:8080"' },
  { host: '[::1]:8080', forwarded: 'host="[::1]:8080"' },
  { host: 'shop.example', forwarded: 'host=shop.example' },
  { host: 'a"b\\c', forwarded: 'host="a\\"b\\\\c"' },
])('Forwarded quotes a host that is not a token: $host', ({ host, forwarded }) => {
  const out = new Map(pairs(upstreamRequestHeaders(incoming([]), { ...CTX, host })));
  expect(out.get('forwarded')).toContain(forwarded);
});

test('rewrite.host replaces Host but X-Forwarded-Host keeps what the client asked for', () => {
  const out = new Map(pairs(upstreamRequestHeaders(incoming(['Host', 'shop.example']), { ...CTX, hostOverride: 'internal.svc' })));
  expect(out.get('host')).toBe('internal.svc');
  expect(out.get('x-forwarded-host')).toBe('shop.example');
});

test('without any host, none is sent and undici uses the endpoint’s', () => {
  const out = pairs(upstreamRequestHeaders(incoming([]), { ...CTX, host: '' }));
  expect(out.map(([n]) => n)).not.toContain('host');
});

test('a trusted peer’s several X-Forwarded-For and Forwarded fields are joined in order before ficus’s hop', () => {
  const out = new Map(
    pairs(
      upstreamRequestHeaders(
        incoming(['X-Forwarded-For', '1.1.1.1', 'Forwarded', 'for=1.1.1.1', 'x-forwarded-for', '2.2.2.2, 3.3.3.3', 'forwarded', 'for=2.2.2.2']),
        { ...CTX, trusted: true },
      ),
    ),
  );
  expect(out.get('x-forwarded-for')).toBe('1.1.1.1, 2.2.2.2, 3.3.3.3, 192.0.2.10');
  expect(out.get('forwarded')).toBe('for=1.1.1.1, for=2.2.2.2, for=192.0.2.10;proto=http;host=shop.example');
});

const buffers = (flat: string[]) => flat.map((s) => Buffer.from(s, 'latin1'));

test('response: hop-by-hop fields and those any Connection names are dropped; duplicates such as Set-Cookie stay', () => {
  const out = clientResponseHeaders(
    buffers([
      'X-Zero', '0',
      'Content-Type', 'text/plain',
      'CONNECTION', 'X-One, x-zero',
      'Connection', 'x-two, close',
      'X-One', '1',
      'x-two', '2',
      'Set-Cookie', 'a=1',
      'Set-Cookie', 'b=2',
      'Transfer-Encoding', 'chunked',
      'Keep-Alive', 'timeout=5',
      'Proxy-Authenticate', 'Basic',
      'Trailer', 'x-t',
      'Upgrade', 'h2c',
      'Content-Length', '5',
    ]),
  );
  expect(pairs(out)).toEqual([
    ['Content-Type', 'text/plain'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['Content-Length', '5'],
  ]);
});

test('response header values pass through byte for byte', () => {
  const value = Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9]);
  const out = clientResponseHeaders([Buffer.from('X-Name'), value]);
  expect(Buffer.from(out[1] as string, 'latin1').equals(value)).toBe(true);
});

test.each([
  { name: 'a short token', value: 'abc-123', kept: true },
  { name: 'a UUID', value: '0f8fad5b-d9cb-469f-a165-70867728950e', kept: true },
  { name: 'token punctuation', value: 'a/b+c=d:e@f.g_h', kept: true },
  { name: '200 characters', value: 'x'.repeat(200), kept: true },
  { name: '201 characters', value: 'x'.repeat(201), kept: false },
  { name: 'an empty value', value: '', kept: false },
  { name: 'a space', value: 'a b', kept: false },
  { name: 'a comma (two ids joined)', value: 'a,b', kept: false },
  { name: 'a tab', value: 'a\tb', kept: false },
  { name: 'quotes', value: '"quoted"', kept: false },
  { name: 'an array', value: ['a', 'b'], kept: false },
  { name: 'no header', value: undefined, kept: false },
])('x-request-id with $name is kept: $kept', ({ value, kept }) => {
  expect(acceptRequestId(value)).toBe(kept ? value : undefined);
});

test('from a trusted peer the X-Forwarded- family is kept, but never in an underscored spelling', () => {
  const out = new Map(pairs(upstreamRequestHeaders(incoming(['X-Real-IP', '203.0.113.5', 'X_Real_IP', '198.51.100.9', 'X_Forwarded_Ssl', 'on']), { ...CTX, trusted: true })).map(([k, v]) => [k.toLowerCase(), v]));
  expect(out.get('x-real-ip')).toBe('203.0.113.5');
  expect(out.has('x_real_ip')).toBe(false);
  expect(out.has('x_forwarded_ssl')).toBe(false);
});
