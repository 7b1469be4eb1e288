import fc from 'fast-check';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { startProxy, routesYaml } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream } from '../helpers/upstream.js';

/** The heads mutated: a plain request, a WebSocket handshake (tunnelled) and an h2c upgrade (replayed as plain HTTP). */
const BASES = [
  ['GET /fuzz?q=1 HTTP/1.1', 'Host: x', 'X-A: 1', 'Content-Length: 0'],
  ['GET /fuzz HTTP/1.1', 'Host: x', 'X-Base: websocket', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13'],
  ['GET /fuzz HTTP/1.1', 'Host: x', 'X-Base: h2c', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA'],
] as const;

/** Header lines that framing bugs are made of, plus arbitrary printable ones. */
const line = fc.oneof(
  fc.constantFrom(
    'Content-Length: 5',
    'Content-Length: 5, 5',
    'Content-Length: -1',
    'Transfer-Encoding: chunked',
    'Transfer-Encoding: chunked ',
    'Transfer-Encoding: xchunked',
    'Transfer-Encoding: chunked, identity',
    ' chunked',
    'Host: y',
    'Host:',
    'Connection: close, te',
    'Expect: 100-continue',
    'Upgrade: h2c',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'GET /smuggled HTTP/1.1',
    '0',
    '',
  ),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
);
const byte = fc.oneof(fc.constantFrom('\0', '\r', '\n', ' ', '\t', ':', ',', '\x7f', '\xff', '/', '@'), fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }));

type Mutation =
  | { kind: 'insert'; at: number; line: string }
  | { kind: 'delete'; at: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'byte'; at: number; offset: number; byte: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), line }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), offset: fc.nat(), byte }),
);

function mutate(base: readonly string[], mutations: Mutation[], endings: readonly string[], body: string): string {
  const lines = [...base];
  for (const m of mutations) {
    const at = m.at % (lines.length + 1);
    if (m.kind === 'insert') lines.splice(at, 0, m.line);
    else if (lines.length === 0 || at >= lines.length) continue;
    else if (m.kind === 'delete') lines.splice(at, 1);
    else if (m.kind === 'duplicate') lines.splice(at, 0, lines[at]!);
    else {
      const text = lines[at]!;
      const offset = m.offset % (text.length + 1);
      lines[at] = text.slice(0, offset) + m.byte + text.slice(offset + 1);
    }
  }
  const eol = (i: number) => endings[i % endings.length] ?? '\r\n';
  return lines.map((l, i) => l + eol(i)).join('') + eol(lines.length) + body;
}

// Mostly CRLF, so that enough mutated heads get past the parser to test what reaches the upstream.
const endings = fc.oneof(
  { weight: 3, arbitrary: fc.constant(['\r\n']) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom('\r\n', '\n', '\r'), { minLength: 1, maxLength: 4 }) },
);

const head = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.constantFrom(...BASES), fc.array(mutation, { maxLength: 4 }), endings, fc.constantFrom('', '0\r\n\r\n', 'hello', '5\r\nhello\r\n0\r\n\r\n'))
      .map(([base, m, e, b]) => mutate(base, m, e, b)),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 200 }) },
);

test('random and mutated request heads never crash the edge nor reach the upstream malformed', async () => {
  const upstream = await startUpstream('legacy');
  const proxy = await startProxy(
    routesYaml(`limits: { headerTimeout: 1s }\nservices:\n  legacy: { url: ${upstream.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: legacy\n`),
  );
  const port = Number(new URL(proxy.app.proxyUrl).port);

  await fc.assert(
    fc.asyncProperty(fc.array(head, { minLength: 1, maxLength: 25 }), async (heads) => {
      // Concurrent, each cut short: a head the edge is still waiting on must not stall the run.
      const done = (r: string) => /HTTP\/1\.[01] \d{3} /.test(r) && (r.endsWith('}') || r.endsWith('\r\n0\r\n\r\n'));
      await Promise.all(heads.map((bytes) => rawExchange(port, bytes, { until: done, timeoutMs: 300 })));
      for (const seen of upstream.seen) {
        expect(seen.method).toMatch(/^[A-Z]+$/);
        expect(seen.url.startsWith('/')).toBe(true);
        expect(seen.headers.host).toBeTruthy();
        const hosts = seen.rawHeaders.filter((v, i) => i % 2 === 0 && v.toLowerCase() === 'host');
        expect(hosts).toHaveLength(1);
        // An upgrade reaches the upstream only as a WebSocket handshake; anything else, as plain HTTP.
        const upgrade = seen.headers.upgrade;
        if (upgrade !== undefined) {
          expect(upgrade).toBe('websocket');
          expect(seen.headers.connection).toBe('Upgrade');
        }
        expect(seen.headers['http2-settings']).toBeUndefined();
      }
      const res = await request(`${proxy.app.proxyUrl}/after`);
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 40) },
  );
  // The property must have been tested on requests the edge let through, not only on refusals.
  expect(upstream.seen.filter((s) => s.url !== '/after').length).toBeGreaterThan(20);
  expect(upstream.seen.some((s) => s.headers['x-base'] === 'websocket' && s.headers.upgrade === 'websocket')).toBe(true);
  expect(upstream.seen.some((s) => s.headers['x-base'] === 'h2c')).toBe(true);
});
