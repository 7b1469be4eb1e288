import type { Clock } from './clock.js';

/**
 * The legacy share is judged over a sliding window rather than since start: after a route is
 * moved, the gauge should show the new split within minutes, not be diluted by days of history.
 */
export const LEGACY_SHARE_WINDOW_MS = 5 * 60_000;
const SLOTS = 30;

export interface ShareReading {
  /** legacy / requests, or NaN when no request was forwarded in the window. */
  share: number;
  requests: number;
  legacy: number;
  windowMs: number;
}

/** Counts in time slots of window/30; a slot is reused once its time has left the window. */
export class ShareWindow {
  readonly #slotMs: number;
  readonly #epoch = new Float64Array(SLOTS).fill(-1);
  readonly #total = new Float64Array(SLOTS);
  readonly #legacy = new Float64Array(SLOTS);

  constructor(
    private readonly clock: Clock,
    readonly windowMs: number,
  ) {
    this.#slotMs = windowMs / SLOTS;
  }

  add(legacy: boolean): void {
    const epoch = Math.floor(this.clock.now() / this.#slotMs);
    const slot = epoch % SLOTS;
    if (this.#epoch[slot] !== epoch) {
      this.#epoch[slot] = epoch;
      this.#total[slot] = 0;
      this.#legacy[slot] = 0;
    }
    (this.#total[slot] as number)++;
    if (legacy) (this.#legacy[slot] as number)++;
  }

  read(): ShareReading {
    const now = Math.floor(this.clock.now() / this.#slotMs);
    let requests = 0;
    let legacy = 0;
    for (let slot = 0; slot < SLOTS; slot++) {
      const epoch = this.#epoch[slot] as number;
      if (epoch <= now - SLOTS || epoch > now) continue;
      requests += this.#total[slot] as number;
      legacy += this.#legacy[slot] as number;
    }
    return { share: requests === 0 ? Number.NaN : legacy / requests, requests, legacy, windowMs: this.windowMs };
  }
}
