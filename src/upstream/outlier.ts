import type { Clock, Random } from '../observe/clock.js';
import type { Endpoint } from './endpoint.js';

export const BASE_EJECTION_MS = 30_000;
export const MAX_EJECTION_MS = 300_000;

export interface OutlierEvents {
  ejected(endpoint: Endpoint, durationMs: number): void;
  returned(endpoint: Endpoint): void;
}

/** Ejections past this many in a row last no longer: the multiplier stops there, so it decays from the cap at once. */
const MAX_MULTIPLIER = MAX_EJECTION_MS / BASE_EJECTION_MS;

/**
 * Passive outlier detection after Envoy's: `threshold` upstream failures in a row eject an
 * endpoint for 30 s × its multiplier (capped at 5 min) plus up to 10 % jitter, so endpoints
 * ejected together do not return together. The multiplier counts ejections in a row: each
 * ejection adds one, and every 30 s back in service takes one away, as Envoy's decrements
 * while the host stays healthy; an endpoint that failed last week starts again at 30 s. Never
 * more than half of the endpoints are out at once; on return the failure counter starts again
 * from zero.
 */
export class OutlierDetector {
  #retired = false;

  constructor(
    private readonly endpoints: readonly Endpoint[],
    private readonly threshold: number,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly events: OutlierEvents,
  ) {}

  success(endpoint: Endpoint): void {
    endpoint.consecutiveFailures = 0;
  }

  failure(endpoint: Endpoint): void {
    endpoint.consecutiveFailures += 1;
    // A request of the replaced generation failing late: the endpoints it would eject serve no one.
    if (this.#retired || endpoint.consecutiveFailures < this.threshold || endpoint.ejectedUntil !== 0) return;
    const now = this.clock.now();
    if (this.ejectedCount(now) + 1 > Math.floor(this.endpoints.length / 2)) return;
    endpoint.timesEjected += 1;
    const served = endpoint.returnedAt === 0 ? 0 : Math.max(0, now - endpoint.returnedAt);
    const decayed = Math.max(0, endpoint.ejectionMultiplier - Math.floor(served / BASE_EJECTION_MS));
    endpoint.ejectionMultiplier = Math.min(decayed + 1, MAX_MULTIPLIER);
    const base = BASE_EJECTION_MS * endpoint.ejectionMultiplier;
    const duration = Math.round(base * (1 + 0.1 * this.random()));
    const until = (endpoint.ejectedUntil = now + duration);
    endpoint.consecutiveFailures = 0;
    this.events.ejected(endpoint, duration);
    // The ejection ends after `duration` of elapsed (monotonic) time, and is told then, even
    // when no request comes to look and even when the wall clock is stepped back meanwhile
    // (NTP, a resumed VM), which would otherwise push `ejectedUntil` that much further away.
    setTimeout(() => {
      if (this.#retired || endpoint.ejectedUntil !== until) return;
      const at = this.clock.now();
      if (until > at) endpoint.ejectedUntil = at;
      this.refresh(at);
    }, duration).unref();
  }

  /** The service's runtime was replaced by a reload: its ejections end unannounced, with it. */
  retire(): void {
    this.#retired = true;
  }

  /** Returns endpoints whose ejection has expired; call before choosing among them. */
  refresh(now: number): void {
    for (const endpoint of this.endpoints) {
      if (endpoint.ejectedUntil !== 0 && endpoint.ejectedUntil <= now) {
        // Back in service since its time was up, not since someone next asked.
        endpoint.returnedAt = endpoint.ejectedUntil;
        endpoint.ejectedUntil = 0;
        endpoint.consecutiveFailures = 0;
        this.events.returned(endpoint);
      }
    }
  }

  ejectedCount(now: number): number {
    let count = 0;
    for (const endpoint of this.endpoints) if (endpoint.ejectedUntil > now) count++;
    return count;
  }
}
