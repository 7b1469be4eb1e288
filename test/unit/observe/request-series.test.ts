import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { expect, test } from 'vitest';
import { Metrics } from '../../../src/observe/metrics.js';

const BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The same two metrics as prom-client itself would keep them, for comparison. */
function reference() {
  const registry = new Registry();
  const requests = new Counter({ name: 'ficus_requests_total', help: 'x', labelNames: ['route', 'service', 'color', 'side', 'code'], registers: [registry] });
  const duration = new Histogram({ name: 'ficus_request_duration_seconds', help: 'x', labelNames: ['route', 'service', 'color', 'side'], buckets: BOUNDS, registers: [registry] });
  return { registry, requests, duration };
}

const samples = (text: string) => text.split('\n').filter((line) => !line.startsWith('#')).sort();

const observation = fc.record({
  route: fc.constantFrom('rest', 'api', ''),
  service: fc.constantFrom('legacy', 'orders', ''),
  color: fc.constantFrom('', 'blue'),
  side: fc.constantFrom('stable', 'canary', ''),
  status: fc.constantFrom(0, 200, 404, 502),
  // Bounds themselves included: `le` is inclusive.
  seconds: fc.oneof(fc.constantFrom(...BOUNDS, 0, 31), fc.double({ min: 0, max: 40, noNaN: true })),
});

test('requests_total and request_duration_seconds expose exactly what prom-client would', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(observation, { maxLength: 40 }), async (observations) => {
      const metrics = new Metrics();
      const ref = reference();
      for (const { route, service, color, side, status, seconds } of observations) {
        metrics.recordRequest(route, service, color, side, status, seconds);
        ref.requests.labels({ route, service, color, side, code: status === 0 ? '000' : String(status) }).inc();
        ref.duration.labels({ route, service, color, side }).observe(seconds);
      }
      for (const name of ['ficus_requests_total', 'ficus_request_duration_seconds']) {
        expect(samples(await metrics.registry.getSingleMetricAsString(name))).toEqual(samples(await ref.registry.getSingleMetricAsString(name)));
      }
      const plain = (values: { value: number; metricName?: string; labels: object }[]) => values.map(({ value, metricName, labels }) => ({ value, metricName, labels }));
      expect(plain((await metrics.duration.get()).values)).toEqual(plain((await ref.duration.get()).values));
    }),
    { numRuns: 200 },
  );
});

const text = async (parts: AsyncIterable<string>) => {
  let all = '';
  for await (const part of parts) all += part;
  return all;
};

/** The lines of one family (its HELP and TYPE included), in the order written. */
const family = (exposition: string, name: string) => exposition.split('\n').filter((line) => line.startsWith(name) || line.startsWith(`# HELP ${name} `) || line.startsWith(`# TYPE ${name} `));

test('the exposition writes the request families line for line as prom-client would, labels that need escapes included', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(observation, { maxLength: 40 }), fc.constantFrom('plain', 'a"b', 'back\\slash', 'new\nline'), async (observations, odd) => {
      const metrics = new Metrics();
      const ref = reference();
      for (const { route, service, color, side, status, seconds } of [...observations, { route: odd, service: 'x', color: '', side: 'stable', status: 200, seconds: 0.2 }]) {
        metrics.recordRequest(route, service, color, side, status, seconds);
        ref.requests.labels({ route, service, color, side, code: status === 0 ? '000' : String(status) }).inc();
        ref.duration.labels({ route, service, color, side }).observe(seconds);
      }
      const ours = await text(metrics.exposition());
      const theirs = await ref.registry.metrics();
      for (const name of ['ficus_requests_total', 'ficus_request_duration_seconds']) {
        // Sample order within a family is prom-client's insertion order, which differs; Prometheus reads it unordered.
        expect(samples(family(ours, name).join('\n'))).toEqual(samples(family(theirs, name).join('\n')));
      }
    }),
    { numRuns: 100 },
  );
});

test('the exposition is the registry’s own text: the same families in the same order, blank lines between, one newline at the end', async () => {
  const metrics = new Metrics();
  for (let i = 0; i < 600; i++) metrics.recordRequest(`r${i}`, 'app', '', 'stable', 200, 0.01);
  const values = (t: string) => t.split('\n').map((line) => (line.startsWith('#') ? line : line.replace(/ \S+$/, ' <value>')));
  const ours = await text(metrics.exposition());
  expect(values(ours)).toEqual(values(await metrics.registry.metrics()));
  expect(family(ours, 'ficus_requests_total')).toEqual(family(await metrics.registry.metrics(), 'ficus_requests_total'));
});

test('a scrape of thousands of request series gives the event loop a turn every few hundred series, so proxied requests are not held for all of it', async () => {
  const metrics = new Metrics();
  for (let i = 0; i < 3_000; i++) metrics.recordRequest(`r${i}`, 'app', '', 'stable', 200, 0.01);
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const turnsAtPart: number[] = [];
  for await (const part of metrics.exposition()) if (part.includes('route="r')) turnsAtPart.push(turns);
  ticking = false;
  // 3,000 series in parts of at most 256, for each of the two families: a turn before each.
  expect(turnsAtPart.length).toBeGreaterThanOrEqual(2 * Math.ceil(3_000 / 256));
  expect(new Set(turnsAtPart).size).toBe(turnsAtPart.length);
});

test('a series of a removed route counted after a scrape wrote it is kept until a scrape has shown its last count', async () => {
  const metrics = new Metrics();
  const scrape = () => text(metrics.exposition());
  const empty = { routes: [], services: new Map(), hash: 'next' } as unknown as Parameters<Metrics['dropStale']>[0];
  metrics.recordRequest('gone', 'old', '', 'stable', 200, 0.01);
  await scrape();
  // A request of the removed route ends after the scrape wrote its series, before the prune.
  metrics.recordRequest('gone', 'old', '', 'stable', 200, 0.01);
  await metrics.dropStale(empty);
  expect(await scrape()).toContain('ficus_requests_total{route="gone",service="old",color="",side="stable",code="200"} 2');
  await metrics.dropStale(empty);
  expect(await scrape()).not.toContain('route="gone"');
});
