import type { Pool } from 'undici';
import type { EndpointDef } from '../config/snapshot.js';

/** Runtime state of one upstream endpoint; lives as long as its service's definition. */
export class Endpoint {
  inflight = 0;
  consecutiveFailures = 0;
  timesEjected = 0;
  /** What the next ejection's length is a multiple of: ejections in a row, less one for every 30 s back in service. */
  ejectionMultiplier = 0;
  /** Epoch ms at which the last ejection ended; 0 before any. */
  returnedAt = 0;
  /** Epoch ms until which the endpoint is ejected; 0 when in service. */
  ejectedUntil = 0;
  /** False while active health checks fail (services with `health:` only). */
  healthy = true;
  /**
   * What every request to this endpoint names as its `servername`. undici takes a request's from
   * its Host header when none is given, and closes a TLS connection whenever two requests in a
   * row name different ones; one constant per endpoint keeps its connections (the pool's
   * connector derives the SNI and the name checked from the URL itself: pools.ts).
   */
  readonly servername: string;

  constructor(
    readonly def: EndpointDef,
    /**
     * Replaced when a blue/green colour goes inactive: requests already dispatched finish on
     * the old pool, which then closes; later ones (preview traffic) open fresh connections.
     */
    public pool: Pool,
  ) {
    this.servername = new URL(def.origin).hostname.replace(/^\[|\]$/g, '');
  }

  /** In service as far as ejection and health checks go (panic routing may use it anyway). */
  isUp(now: number): boolean {
    return this.ejectedUntil <= now && this.healthy;
  }

  get origin(): string {
    return this.def.origin;
  }
}
