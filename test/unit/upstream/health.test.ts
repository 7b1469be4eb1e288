import { expect, onTestFinished, test } from 'vitest';
import type { ServiceDef, Snapshot } from '../../../src/config/snapshot.js';
import type { Generation } from '../../../src/config/store.js';
import { HealthChecks } from '../../../src/upstream/health.js';
import { PoolRegistry } from '../../../src/upstream/pools.js';
import { ServiceRuntime } from '../../../src/upstream/service.js';

/** A generation of one health-checked service, on pools of its own (a refused port: no check needs an answer here). */
function generation(): { generation: Generation; service: ServiceRuntime } {
  const pools = new PoolRegistry();
  onTestFinished(() => pools.destroyAll());
  const def: ServiceDef = {
    name: 'app',
    endpoints: [{ origin: 'http://127.0.0.1:1', basePath: '' }],
    timeouts: { connectMs: 1_000, responseMs: 1_000, idleMs: 1_000 },
    balance: 'round-robin',
    consecutiveFailures: 5,
    legacy: false,
    health: { path: '/healthz', intervalMs: 3_600_000, timeoutMs: 1_000, expect: undefined },
    fingerprint: '',
  };
  const service = new ServiceRuntime(def, pools, { now: () => 0 }, () => 0, { ejected() {}, returned() {}, panic() {} });
  return { generation: { snapshot: {} as Snapshot, services: new Map([['app', service]]), canaries: [] }, service };
}

/** Checks the pool has been handed and not finished: dispatched synchronously by a checker's first round. */
const checksUnderway = (service: ServiceRuntime): number => service.endpoints[0]?.pool.stats.pending ?? -1;

test('a checker starts with its first check at once, and a reconcile after stop (a reload during a drain) starts none', () => {
  const checks = new HealthChecks({ unhealthy() {}, healthy() {} });
  onTestFinished(() => checks.stop());
  const first = generation();
  checks.reconcile(first.generation);
  expect(checksUnderway(first.service)).toBe(1);

  checks.stop();
  const next = generation();
  checks.reconcile(next.generation);
  expect(checksUnderway(next.service)).toBe(0);
});
