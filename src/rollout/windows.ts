import type { Clock } from '../observe/clock.js';

/**
 * Latency buckets: exponential from 0.5 ms by ×1.25 up to about 30 h, so that a long download
 * or stream is measured too (nothing a `timeouts.idle` allows outlasts the top in practice); p99
 * is read as a bucket's upper bound. 87 buckets of 4 bytes per slot.
 */
const FIRST_BOUND_MS = 0.5;
const GROWTH = 1.25;
const BUCKETS = 87;
const BOUNDS_MS: readonly number[] = Array.from({ length: BUCKETS }, (_, i) => FIRST_BOUND_MS * GROWTH ** i);
/** The largest p99 a window can read: a `maxP99` above it could never be exceeded. */
export const LONGEST_P99_MS = BOUNDS_MS[BUCKETS - 1] as number;
const LOG_GROWTH = Math.log(GROWTH);

function bucketFor(latencyMs: number): number {
  // Written so that NaN lands here too: an index of NaN would count the request in no bucket,
  // and the p99 would then read as the slowest bucket.
  if (!(latencyMs > FIRST_BOUND_MS)) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log(latencyMs / FIRST_BOUND_MS) / LOG_GROWTH));
}

export interface WindowStats {
  readonly requests: number;
  readonly failures: number;
  /** failures / requests; 0 with no requests. */
  readonly errorRate: number;
  /** 99th percentile latency in ms (a bucket's upper bound, at most 25 % above the truth); 0 with no requests. */
  readonly p99Ms: number;
}

/**
 * Outcomes of the last `windowMs`, in `slots` rotating slots: O(1) per request, memory
 * independent of traffic. Time comes from the injected clock, so tests advance it instead of
 * sleeping. Also tracks failures in a row, which eject a canary without waiting for a verdict.
 */
export class SlidingWindow {
  readonly #slotMs: number;
  readonly #starts: Float64Array;
  readonly #requests: Uint32Array;
  readonly #failures: Uint32Array;
  readonly #latency: Uint32Array;
  consecutiveFailures = 0;

  constructor(
    readonly windowMs: number,
    private readonly clock: Clock,
    private readonly slots = 10,
  ) {
    this.#slotMs = Math.max(1, windowMs / slots);
    this.#starts = new Float64Array(slots).fill(-Infinity);
    this.#requests = new Uint32Array(slots);
    this.#failures = new Uint32Array(slots);
    this.#latency = new Uint32Array(slots * BUCKETS);
  }

  record(failed: boolean, latencyMs: number): void {
    const slot = this.#slot(this.clock.now());
    this.#requests[slot]! += 1;
    if (failed) {
      this.#failures[slot]! += 1;
      this.consecutiveFailures += 1;
    } else {
      this.consecutiveFailures = 0;
    }
    this.#latency[slot * BUCKETS + bucketFor(latencyMs)]! += 1;
  }

  stats(): WindowStats {
    const now = this.clock.now();
    const histogram = new Uint32Array(BUCKETS);
    let requests = 0;
    let failures = 0;
    for (let slot = 0; slot < this.slots; slot++) {
      const age = now - (this.#starts[slot] as number);
      // A slot that starts after now was filled before the wall clock stepped back: not this window.
      if (age >= this.windowMs || age < 0) continue;
      requests += this.#requests[slot] as number;
      failures += this.#failures[slot] as number;
      for (let b = 0; b < BUCKETS; b++) histogram[b]! += this.#latency[slot * BUCKETS + b] as number;
    }
    return { requests, failures, errorRate: requests === 0 ? 0 : failures / requests, p99Ms: percentile(histogram, requests, 0.99) };
  }

  /** Forgets everything, e.g. when a new release of the canary starts. */
  reset(): void {
    this.#starts.fill(-Infinity);
    this.#requests.fill(0);
    this.#failures.fill(0);
    this.#latency.fill(0);
    this.consecutiveFailures = 0;
  }

  #slot(now: number): number {
    const start = Math.floor(now / this.#slotMs) * this.#slotMs;
    const slot = Math.floor(now / this.#slotMs) % this.slots;
    if (this.#starts[slot] !== start) {
      this.#starts[slot] = start;
      this.#requests[slot] = 0;
      this.#failures[slot] = 0;
      this.#latency.fill(0, slot * BUCKETS, (slot + 1) * BUCKETS);
    }
    return slot;
  }
}

function percentile(histogram: Uint32Array, total: number, q: number): number {
  if (total === 0) return 0;
  const rank = Math.ceil(total * q);
  let seen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    seen += histogram[b] as number;
    if (seen >= rank) return BOUNDS_MS[b] as number;
  }
  return BOUNDS_MS[BUCKETS - 1] as number;
}
