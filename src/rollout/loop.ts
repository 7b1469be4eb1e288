import type { Clock } from '../observe/clock.js';
import type { CanaryRuntime } from './canary.js';

/** The timer the loop arms; injectable so that a test can drive the loop by hand. */
export interface Timers {
  set(run: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const systemTimers: Timers = {
  set: (run, ms) => setTimeout(run, ms).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * The analysis loop: judges each canary of the running configuration when its interval is due,
 * off the request path. One timer, armed for the earliest canary due, so a canary judged every
 * 200 ms and one judged every 10 s cost nothing in between.
 */
export class AnalysisLoop {
  #handle: unknown;
  #running = false;

  constructor(
    private readonly canaries: () => Iterable<CanaryRuntime | undefined>,
    private readonly clock: Clock,
    private readonly timers: Timers = systemTimers,
    /** A verdict that threw (a bug): reported, and the loop goes on with the other canaries. */
    private readonly onError: (error: unknown, canary: CanaryRuntime) => void = () => undefined,
  ) {}

  /** Judges every canary that is due; returns the ms until the next one is, undefined with none. */
  tick(): number | undefined {
    const now = this.clock.now();
    let next = Infinity;
    for (const canary of this.canaries()) {
      if (canary === undefined) continue;
      try {
        canary.evaluate(now);
      } catch (error) {
        this.onError(error, canary);
      }
      next = Math.min(next, canary.nextJudgeAt);
    }
    return next === Infinity ? undefined : Math.max(0, next - now);
  }

  start(): void {
    this.#running = true;
    this.reschedule();
  }

  /** Re-arms the timer: after a reload, a new canary may be due before the one it waited for. */
  reschedule(): void {
    if (!this.#running) return;
    if (this.#handle !== undefined) this.timers.clear(this.#handle);
    this.#handle = undefined;
    const now = this.clock.now();
    let next = Infinity;
    // A due time more than one interval ahead was set before the wall clock stepped back:
    // judged now (as `evaluate` would), not an hour from now.
    for (const canary of this.canaries()) if (canary) next = Math.min(next, Math.min(canary.nextJudgeAt, now + canary.def.analysis.intervalMs));
    if (next !== Infinity) this.#arm(Math.max(0, next - now));
  }

  stop(): void {
    this.#running = false;
    if (this.#handle !== undefined) this.timers.clear(this.#handle);
    this.#handle = undefined;
  }

  #arm(ms: number): void {
    // At least 1 ms: the wall clock and the timer's clock may disagree by a hair, and a canary
    // found not yet due must not spin the loop.
    this.#handle = this.timers.set(() => {
      this.#handle = undefined;
      if (!this.#running) return;
      const next = this.tick();
      if (next !== undefined) this.#arm(next);
    }, Math.max(1, ms));
  }
}
