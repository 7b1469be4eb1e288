import type { ServiceDef } from '../config/snapshot.js';
import type { Clock, Random } from '../observe/clock.js';
import { Endpoint } from './endpoint.js';
import { OutlierDetector, type OutlierEvents } from './outlier.js';
import { PoolRegistry } from './pools.js';

/**
 * A service's live endpoints and their health. Built once per service definition and handed
 * over across reloads when the definition is unchanged, so ejections and counters survive.
 */
export class ServiceRuntime {
  readonly endpoints: readonly Endpoint[];
  readonly outlier: OutlierDetector;
  #next = 0;

  constructor(
    readonly def: ServiceDef,
    pools: PoolRegistry,
    private readonly clock: Clock,
    private readonly random: Random,
    events: OutlierEvents,
  ) {
    this.endpoints = def.endpoints.map((e) => new Endpoint(e, pools.acquire(e.origin, def.timeouts)));
    this.outlier = new OutlierDetector(this.endpoints, def.consecutiveFailures, clock, random, events);
  }

  get poolKeys(): string[] {
    return this.def.endpoints.map((e) => PoolRegistry.key(e.origin, this.def.timeouts));
  }

  /** Picks an endpoint in service, other than `exclude` when there is a choice. */
  pick(exclude?: Endpoint): Endpoint | undefined {
    const endpoints = this.endpoints;
    if (endpoints.length === 1) return exclude === endpoints[0] ? undefined : endpoints[0];
    const now = this.clock.now();
    this.outlier.refresh(now);
    return this.def.balance === 'least-request' ? this.#leastRequest(now, exclude) : this.#roundRobin(now, exclude);
  }

  #roundRobin(now: number, exclude: Endpoint | undefined): Endpoint | undefined {
    const n = this.endpoints.length;
    for (let tries = 0; tries < n; tries++) {
      const endpoint = this.endpoints[this.#next++ % n] as Endpoint;
      if (endpoint !== exclude && endpoint.ejectedUntil <= now) return endpoint;
    }
    return undefined;
  }

  /** Power of two choices among endpoints in service (Mitzenmacher): near-optimal, O(1). */
  #leastRequest(now: number, exclude: Endpoint | undefined): Endpoint | undefined {
    const candidates = this.endpoints.filter((e) => e !== exclude && e.ejectedUntil <= now);
    if (candidates.length <= 1) return candidates[0];
    const a = candidates[Math.floor(this.random() * candidates.length)] as Endpoint;
    const b = candidates[Math.floor(this.random() * candidates.length)] as Endpoint;
    return b.inflight < a.inflight ? b : a;
  }
}
