import type { Clock } from '../observe/clock.js';

/** At most one mismatch line per route in this long: a broken shadow must not flood the log. */
export const MISMATCH_LOG_INTERVAL_MS = 10_000;

/**
 * Time-based sampling per route rather than 1 in k: the first mismatch after a quiet spell is
 * always logged (a new difference shows at once), a steady stream costs one line per interval,
 * and each line says how many were left out since the last one.
 */
export class MismatchSampler {
  readonly #routes = new Map<string, { next: number; suppressed: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs = MISMATCH_LOG_INTERVAL_MS,
  ) {}

  /** Forgets the routes a reload removed: a file that renames its routes must not grow this. */
  retain(routes: ReadonlySet<string>): void {
    for (const route of this.#routes.keys()) if (!routes.has(route)) this.#routes.delete(route);
  }

  /** The number of mismatches left out since the last line when this one is to be logged; undefined otherwise. */
  take(route: string): number | undefined {
    const now = this.clock.now();
    const state = this.#routes.get(route);
    if (state === undefined) {
      this.#routes.set(route, { next: now + this.intervalMs, suppressed: 0 });
      return 0;
    }
    // A wall clock stepped back leaves `next` further away than one interval: due from now.
    if (state.next - now > this.intervalMs) state.next = now;
    if (now < state.next) {
      state.suppressed++;
      return undefined;
    }
    const suppressed = state.suppressed;
    state.next = now + this.intervalMs;
    state.suppressed = 0;
    return suppressed;
  }
}
