import { expect, onTestFinished, test, vi } from 'vitest';
import type { ServiceDef } from '../../../src/config/snapshot.js';
import type { Clock } from '../../../src/observe/clock.js';
import type { Endpoint } from '../../../src/upstream/endpoint.js';
import { BASE_EJECTION_MS } from '../../../src/upstream/outlier.js';
import { PoolRegistry } from '../../../src/upstream/pools.js';
import { ServiceRuntime } from '../../../src/upstream/service.js';

function runtime(n: number, options: { balance?: ServiceDef['balance']; threshold?: number; draws?: number[] } = {}) {
  let now = 5_000_000;
  const clock: Clock = { now: () => now };
  const draws = options.draws ?? [];
  const pools = new PoolRegistry();
  onTestFinished(() => pools.destroyAll());
  const def: ServiceDef = {
    name: 'app',
    endpoints: Array.from({ length: n }, (_, i) => ({ origin: `http://127.0.0.1:${20_000 + i}`, basePath: '' })),
    timeouts: { connectMs: 1_000, responseMs: 1_000, idleMs: 1_000 },
    balance: options.balance ?? 'round-robin',
    consecutiveFailures: options.threshold ?? 1,
    legacy: false,
    fingerprint: '',
  };
  const service = new ServiceRuntime(def, pools, clock, () => draws.shift() ?? 0, { ejected() {}, returned() {}, panic() {} });
  const index = (e: Endpoint | undefined) => (e ? service.endpoints.indexOf(e) : -1);
  const picks = (count: number, exclude?: number) =>
    Array.from({ length: count }, () => index(service.pick(exclude === undefined ? undefined : service.endpoints[exclude])));
  const eject = (i: number) => service.outlier.failure(service.endpoints[i] as Endpoint);
  return { service, picks, eject, index, advance: (ms: number) => (now += ms) };
}

test('round-robin goes through the endpoints in order', () => {
  const { picks } = runtime(3);
  expect(picks(7)).toEqual([0, 1, 2, 0, 1, 2, 0]);
});

test('round-robin skips an ejected endpoint, and takes it back when its time is up', () => {
  const { picks, eject, advance } = runtime(3);
  eject(1);
  expect(picks(4)).toEqual([0, 2, 0, 2]);
  advance(BASE_EJECTION_MS);
  expect(picks(3)).toEqual([0, 1, 2]);
});

test('a retry never lands on the endpoint that just failed when there is another', () => {
  const { picks } = runtime(3);
  expect(picks(6, 1)).toEqual([0, 2, 0, 2, 0, 2]);
});

test('with one endpoint, pick returns it, and nothing when it is the one excluded', () => {
  const { picks } = runtime(1);
  expect(picks(2)).toEqual([0, 0]);
  expect(picks(1, 0)).toEqual([-1]);
});

test('nothing to pick when the only other endpoint is ejected', () => {
  const { picks, eject } = runtime(2);
  eject(1);
  expect(picks(1, 0)).toEqual([-1]);
});

test('least-request picks the less loaded of two different endpoints', () => {
  // Both draws land on index 0: the second is moved off it, so the two candidates differ.
  const { service, picks } = runtime(2, { balance: 'least-request', draws: [0, 0, 0, 0, 0.9, 0.9] });
  (service.endpoints[0] as Endpoint).inflight = 3;
  expect(picks(3)).toEqual([1, 1, 1]);
  (service.endpoints[0] as Endpoint).inflight = 0;
  (service.endpoints[1] as Endpoint).inflight = 2;
  expect(picks(1)).toEqual([0]);
});

test.each([
  { draws: [0, 0], pair: [0, 1] },
  { draws: [0.5, 0], pair: [2, 0] },
  { draws: [0.99, 0.99], pair: [3, 2] },
  { draws: [0.3, 0.4], pair: [1, 2] },
])('least-request draws two distinct endpoints: $draws → $pair', ({ draws, pair }) => {
  const { service, picks } = runtime(4, { balance: 'least-request', draws: [...draws] });
  for (const [i, e] of service.endpoints.entries()) e.inflight = pair.includes(i) ? 10 + i : 100;
  // Of the pair, the one with fewer in flight is the lower index (10 + i).
  expect(picks(1)).toEqual([Math.min(...pair)]);
});

test('least-request leaves out ejected and excluded endpoints', () => {
  const { service, picks, eject } = runtime(4, { balance: 'least-request', draws: Array(40).fill(0.7) });
  eject(0);
  eject(2);
  for (const e of service.endpoints) e.inflight = 0;
  expect(new Set(picks(10))).toEqual(new Set([3]));
  expect(picks(1, 3)).toEqual([1]);
});

test('panic routing that an ejection started ends when the ejection runs out, told then, with no request coming to look', () => {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
  onTestFinished(() => void vi.useRealTimers());
  const pools = new PoolRegistry();
  onTestFinished(() => pools.destroyAll());
  const def: ServiceDef = {
    name: 'app',
    endpoints: [0, 1].map((i) => ({ origin: `http://127.0.0.1:${20_000 + i}`, basePath: '' })),
    timeouts: { connectMs: 1_000, responseMs: 1_000, idleMs: 1_000 },
    balance: 'round-robin',
    consecutiveFailures: 1,
    legacy: false,
    fingerprint: '',
  };
  const told: string[] = [];
  const service = new ServiceRuntime(def, pools, { now: () => Date.now() }, () => 0, {
    ejected: () => told.push('ejected'),
    returned: () => told.push('returned'),
    panic: (entered) => told.push(entered ? 'panic' : 'panic ended'),
  });
  const [failing, ejected] = service.endpoints as [Endpoint, Endpoint];
  service.setHealthy(failing, false);
  service.outlier.failure(ejected);
  expect(told).toEqual(['ejected', 'panic']);
  vi.advanceTimersByTime(BASE_EJECTION_MS);
  expect(told).toEqual(['ejected', 'panic', 'returned', 'panic ended']);
});
