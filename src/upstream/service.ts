import type { Pool } from 'undici';
import type { ServiceDef } from '../config/snapshot.js';
import type { Clock, Random } from '../observe/clock.js';
import { Endpoint } from './endpoint.js';
import { OutlierDetector, type OutlierEvents } from './outlier.js';
import { PoolRegistry } from './pools.js';

/** What a service's endpoint group tells: outlier ejections, and panic routing starting and ending. */
export interface ServiceEvents extends OutlierEvents {
  /** No endpoint both passes its health checks and is free of ejection (`true`), or one does again. */
  panic(entered: boolean): void;
}

/** The two endpoint groups of a blue/green service, each with its own health and pools. */
export interface ColourRuntimes {
  readonly blue: ServiceRuntime;
  readonly green: ServiceRuntime;
}

/**
 * A service's live endpoints and their health. Built once per service definition and handed
 * over across reloads when the definition is unchanged, so ejections and counters survive.
 * A blue/green service has no endpoints of its own: each colour is a runtime of its own,
 * carried over by the colour's definition, so a cutover resets neither colour.
 */
export class ServiceRuntime {
  readonly endpoints: readonly Endpoint[];
  readonly outlier: OutlierDetector;
  /** Pools of a colour are its own (see PoolRegistry.key); '' shares them by origin. */
  readonly #scope: string;
  #next = 0;
  /** Endpoints failing their health checks. When all are, they are all used anyway (panic). */
  #unhealthy = 0;
  /** Panic routing as last told; it changes only when health or ejections do. */
  #panicking = false;
  readonly #events: ServiceEvents;

  constructor(
    readonly def: ServiceDef,
    pools: PoolRegistry,
    private readonly clock: Clock,
    private readonly random: Random,
    events: ServiceEvents,
    /** Set when `def.colours` is. */
    readonly colours?: ColourRuntimes,
  ) {
    const scope = (this.#scope = def.colour === undefined ? '' : `${def.name}/${def.colour}`);
    this.endpoints = def.endpoints.map((e) => new Endpoint(e, pools.acquire(e.origin, def.timeouts, scope)));
    this.#events = events;
    const told: OutlierEvents = {
      ejected: (endpoint, durationMs) => {
        events.ejected(endpoint, durationMs);
        this.#notePanic();
      },
      returned: (endpoint) => {
        events.returned(endpoint);
        this.#notePanic();
      },
    };
    this.outlier = new OutlierDetector(this.endpoints, def.consecutiveFailures, clock, random, told);
  }

  get poolKeys(): string[] {
    return this.def.endpoints.map((e) => PoolRegistry.key(e.origin, this.def.timeouts, this.#scope));
  }

  /**
   * Hands every pool to `retire` (which closes it once the requests already on it are done)
   * and takes it out of the registry; with `rebind`, the endpoints get fresh pools and keep
   * their health. Used when a colour goes inactive, so its idle connections do not linger.
   */
  renewPools(pools: PoolRegistry, retire: (pool: Pool) => void, rebind: boolean): void {
    // Detach all first: endpoints sharing an origin share a pool, and must share the new one.
    for (const key of this.poolKeys) pools.detach(key);
    for (const endpoint of this.endpoints) retire(endpoint.pool);
    if (!rebind) return;
    for (const endpoint of this.endpoints) endpoint.pool = pools.acquire(endpoint.origin, this.def.timeouts, this.#scope);
  }

  /** Health checks put an endpoint out of service, or back; the count spares `pick` a scan. */
  setHealthy(endpoint: Endpoint, healthy: boolean): void {
    if (endpoint.healthy === healthy) return;
    endpoint.healthy = healthy;
    this.#unhealthy += healthy ? -1 : 1;
    this.#notePanic();
  }

  /** Whether the endpoints failing their health checks serve anyway, for want of any that passes (panic routing). */
  panicking(now: number): boolean {
    return this.#panic(now);
  }

  /** An operator must hear that failing endpoints serve: `endpoint_up` shows them 0 all the while. */
  #notePanic(): void {
    const panic = this.#panic(this.clock.now());
    if (panic === this.#panicking) return;
    this.#panicking = panic;
    this.#events.panic(panic);
  }

  /**
   * Not ejected, and passing its health checks — unless no endpoint is both: a wrong health
   * path, or health checks and passive ejections that together leave nothing, must not take a
   * whole service down, so then the checks are ignored (Envoy's panic routing).
   */
  inService(endpoint: Endpoint, now: number): boolean {
    return this.#usable(endpoint, now, this.#panic(now));
  }

  #panic(now: number): boolean {
    if (this.#unhealthy === 0) return false;
    for (const endpoint of this.endpoints) if (endpoint.healthy && endpoint.ejectedUntil <= now) return false;
    return true;
  }

  /** Picks an endpoint in service, other than `exclude` when there is a choice. */
  pick(exclude?: Endpoint): Endpoint | undefined {
    const endpoints = this.endpoints;
    if (endpoints.length === 1) return exclude === endpoints[0] ? undefined : endpoints[0];
    const now = this.clock.now();
    this.outlier.refresh(now);
    // Once per pick, not once per endpoint tried: with most endpoints failing their checks, each
    // test would scan them all again (quadratic: milliseconds per request at 1,000 endpoints).
    const panic = this.#panic(now);
    return this.def.balance === 'least-request' ? this.#leastRequest(now, panic, exclude) : this.#roundRobin(now, panic, exclude);
  }

  /** `inService` with panic routing already known (`#panic(now)`), for a loop over the endpoints. */
  #usable(endpoint: Endpoint, now: number, panic: boolean): boolean {
    return endpoint.ejectedUntil <= now && (endpoint.healthy || panic);
  }

  #roundRobin(now: number, panic: boolean, exclude: Endpoint | undefined): Endpoint | undefined {
    const n = this.endpoints.length;
    for (let tries = 0; tries < n; tries++) {
      const endpoint = this.endpoints[this.#next++ % n] as Endpoint;
      if (endpoint !== exclude && this.#usable(endpoint, now, panic)) return endpoint;
    }
    return undefined;
  }

  /**
   * Power of two choices (Mitzenmacher): two *different* endpoints in service, drawn at random,
   * and the one with fewer requests in flight wins. Near-optimal, and no array built per pick.
   */
  #leastRequest(now: number, panic: boolean, exclude: Endpoint | undefined): Endpoint | undefined {
    let available = 0;
    for (const endpoint of this.endpoints) if (endpoint !== exclude && this.#usable(endpoint, now, panic)) available++;
    if (available <= 1) return this.#nthAvailable(0, now, panic, exclude);
    const i = Math.floor(this.random() * available);
    let j = Math.floor(this.random() * (available - 1));
    if (j >= i) j++;
    const a = this.#nthAvailable(i, now, panic, exclude) as Endpoint;
    const b = this.#nthAvailable(j, now, panic, exclude) as Endpoint;
    return b.inflight < a.inflight ? b : a;
  }

  #nthAvailable(n: number, now: number, panic: boolean, exclude: Endpoint | undefined): Endpoint | undefined {
    let seen = 0;
    for (const endpoint of this.endpoints) {
      if (endpoint === exclude || !this.#usable(endpoint, now, panic)) continue;
      if (seen++ === n) return endpoint;
    }
    return undefined;
  }
}
