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

  /**
   * Power of two choices (Mitzenmacher): two *different* endpoints in service, drawn at random,
   * and the one with fewer requests in flight wins. Near-optimal, and no array built per pick.
   */
  #leastRequest(now: number, exclude: Endpoint | undefined): Endpoint | undefined {
    let available = 0;
    for (const endpoint of this.endpoints) if (endpoint !== exclude && endpoint.ejectedUntil <= now) available++;
    if (available <= 1) return this.#nthAvailable(0, now, exclude);
    const i = Math.floor(this.random() * available);
    let j = Math.floor(this.random() * (available - 1));
    if (j >= i) j++;
    const a = this.#nthAvailable(i, now, exclude) as Endpoint;
    const b = this.#nthAvailable(j, now, exclude) as Endpoint;
    return b.inflight < a.inflight ? b : a;
  }

  #nthAvailable(n: number, now: number, exclude: Endpoint | undefined): Endpoint | undefined {
    let seen = 0;
    for (const endpoint of this.endpoints) {
      if (endpoint === exclude || endpoint.ejectedUntil > now) continue;
      if (seen++ === n) return endpoint;
    }
    return undefined;
  }
}
