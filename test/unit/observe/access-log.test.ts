import { Writable } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { AccessLog, hundredths, type AccessFields } from '../../../src/observe/access-log.js';
import { LOG_BASE, withLineSink } from '../../../src/observe/log.js';

/** Two loggers on one base: one whose access lines go straight to its sink, one through pino. */
function loggers(level = 'info') {
  const fast: string[] = [];
  const slow: string[] = [];
  const base = LOG_BASE;
  const sinkOf = (into: string[]) => new Writable({ write: (chunk: Buffer, _e, done) => (into.push(chunk.toString()), done()) });
  const direct = pino({ level, base }, sinkOf(fast));
  withLineSink(direct, base, (line) => fast.push(line));
  const plain = pino({ level, base }, sinkOf(slow));
  return { fast, slow, direct, plain };
}

const FULL: AccessFields = {
  requestId: 'req-7f3a',
  method: 'GET',
  path: '/api/orders',
  route: 'api',
  service: 'legacy',
  side: 'stable',
  color: 'blue',
  preview: true,
  endpoint: 'http://127.0.0.1:3001',
  status: 200,
  durationMs: 1.25,
  upstreamMs: 0.5,
  bytesOut: 1234,
  fault: undefined,
};

test.each([
  { name: 'every field', fields: FULL },
  { name: 'fields left out (no service, no method, a fault)', fields: { ...FULL, method: undefined, service: '', side: undefined, color: undefined, preview: undefined, status: 0, fault: 'client_abort' } },
  { name: 'strings JSON must escape', fields: { ...FULL, path: '/a"b\\c\u0001é\u2028', requestId: 'x"y', endpoint: 'http://h:1/ü' } },
])('the direct line is what pino prints for the same fields: $name', ({ fields }) => {
  const { fast, slow, direct, plain } = loggers();
  new AccessLog(direct).write(fields);
  new AccessLog(plain).write(fields);
  expect(fast).toHaveLength(1);
  expect(slow).toHaveLength(1);
  // `time` differs by when each was written; everything else, order included, is the same.
  const strip = (line: string) => line.replace(/"time":\d+/, '"time":0');
  expect(strip(fast[0] as string)).toBe(strip(slow[0] as string));
  expect(JSON.parse(fast[0] as string)).toMatchObject({ level: 30, event: 'access', path: fields.path });
  // One `service` per line, the request's: a base binding of the same name would write it twice.
  expect((fast[0] as string).match(/"service":/g)).toHaveLength(1);
});

test('a logger above info writes no access line', () => {
  const { fast, direct } = loggers('warn');
  new AccessLog(direct).write(FULL);
  expect(fast).toEqual([]);
});

test('durations are printed to two decimals exactly as JSON prints them rounded', () => {
  fc.assert(
    fc.property(fc.oneof(fc.double({ min: 0, max: 1e7, noNaN: true }), fc.integer({ min: 0, max: 1e9 }).map((n) => n / 100)), (ms) => {
      expect(hundredths(ms)).toBe(JSON.stringify(Math.round(ms * 100) / 100));
    }),
    { numRuns: 5_000 },
  );
  for (const ms of [0, 0.001, 0.005, 0.1, 0.29, 1.005, 2.5, 10, 99.999, 1e15, Infinity, NaN]) expect(hundredths(ms)).toBe(JSON.stringify(Math.round(ms * 100) / 100));
});

test('lines stay exact across many distinct names and repeated ones (the names are kept as JSON)', () => {
  const { fast, slow, direct, plain } = loggers();
  const fastLog = new AccessLog(direct);
  const slowLog = new AccessLog(plain);
  for (let i = 0; i < 1_100; i++) {
    const fields = { ...FULL, route: i % 3 === 0 ? 'same' : `route-${i}`, endpoint: i % 2 ? 'http://h:1/ü' : `http://10.0.0.${i % 256}:80`, method: i % 5 ? 'GET' : 'M"X' };
    fastLog.write(fields);
    slowLog.write(fields);
  }
  const strip = (line: string) => line.replace(/"time":\d+/, '"time":0');
  expect(fast.map(strip)).toEqual(slow.map(strip));
});
