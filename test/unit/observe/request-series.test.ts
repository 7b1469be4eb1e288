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
