import { createHash } from 'node:crypto';
import type { Colour, GuardDef, ServiceDef } from '../config/snapshot.js';
import type { Clock } from '../observe/clock.js';
import { judge, type FailReason } from './analysis.js';
import { parseGuardState, type GuardState } from './guard-state.js';
import { SlidingWindow, type WindowStats } from './windows.js';

/** What one guard watches: a blue/green service, the colour its file makes active, and how. */
export interface GuardConfig {
  readonly service: string;
  /** `active` as written in the file. */
  readonly active: Colour;
  readonly def: GuardDef;
  /** Each colour's own fingerprint: a colour's window carries over while it is unchanged. */
  readonly colours: Readonly<Record<Colour, string>>;
  /**
   * Blue, green and the guard itself, not `active` (a change of `active` is a cutover the same
   * guard watches) nor the preview door (it serves no live traffic). A change here is "the file
   * changed again": it ends a rollback. Persisted records carry it, so stale ones are ignored.
   */
  readonly fingerprint: string;
}

/** Undefined for a service that is not blue/green or has no `guard`. */
export function guardConfigOf(def: ServiceDef): GuardConfig | undefined {
  const gd = def.colours?.guard;
  if (def.colours === undefined || gd === undefined) return undefined;
  const colours = { blue: def.colours.blue.fingerprint, green: def.colours.green.fingerprint };
  const fingerprint = createHash('sha256').update(JSON.stringify([colours.blue, colours.green, gd])).digest('hex');
  return { service: def.name, active: def.colours.active, def: gd, colours, fingerprint };
}

export type GuardPhase = 'stable' | 'guarding' | 'rolled-back';
export type RollbackReason = FailReason | 'consecutive_failures';

export type GuardDecision =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'rollback';
      readonly service: string;
      /** The colour that failed; live traffic leaves it. */
      readonly from: Colour;
      /** The previous colour, active again until the file changes. */
      readonly to: Colour;
      readonly reason: RollbackReason;
      readonly message: string;
      readonly stats: WindowStats;
    }
  | { readonly kind: 'passed'; readonly service: string; readonly colour: Colour; readonly message: string };

/** A cutover the guard has started watching. */
export interface GuardWatch {
  readonly service: string;
  readonly from: Colour;
  readonly to: Colour;
  /** Epoch ms: when the new colour is accepted if nothing failed. */
  readonly until: number;
  readonly message: string;
}

const NONE: GuardDecision = Object.freeze({ kind: 'none' });


/**
 * The guarded cutover of one blue/green service (SPEC §1.1). After `active` changes, the new
 * colour is judged like a canary for `window`; failing sends live traffic back to the previous
 * colour until the service's definition changes in the file. Each colour has its own window,
 * fed all the time, so a cutover can compare the new colour with what the old one did just
 * before it.
 */
export class Guard {
  #config: GuardConfig;
  readonly #clock: Clock;
  readonly #windows: Record<Colour, SlidingWindow>;
  #state: GuardPhase = 'stable';
  #configured: Colour;
  #active: Colour;
  #fallback: Colour | undefined;
  #since: number;
  #until = 0;
  #lastVerdictAt = 0;
  #reason: RollbackReason | undefined;
  #message: string | undefined;
  #baseline: WindowStats | undefined;

  /** A guard with nothing to watch yet: stable on the file's active colour. */
  constructor(config: GuardConfig, clock: Clock) {
    this.#config = config;
    this.#clock = clock;
    const span = config.def.analysisWindowMs;
    this.#windows = { blue: new SlidingWindow(span, clock), green: new SlidingWindow(span, clock) };
    this.#configured = this.#active = config.active;
    this.#since = clock.now();
  }

  /** The guard a saved state describes, or undefined when the record is malformed or stale. */
  static restore(saved: unknown, config: GuardConfig, clock: Clock): Guard | undefined {
    const s = parseGuardState(saved);
    if (s === undefined) return undefined;
    // A record taken for another definition (a colour or the guard changed while ficus was down)
    // stands for the guard before that change: `carry` then starts from the colour it served and
    // watches the file's colour, as a reload of the same change would, instead of dropping it.
    const stale = s.fingerprint !== config.fingerprint;
    const guard = new Guard(stale ? { ...config, fingerprint: s.fingerprint, colours: { blue: '', green: '' } } : config, clock);
    guard.#state = s.state;
    guard.#configured = s.configured;
    guard.#active = s.active;
    guard.#fallback = s.fallback ?? undefined;
    guard.#since = s.since;
    guard.#until = s.until ?? 0;
    guard.#lastVerdictAt = clock.now();
    guard.#reason = s.reason ?? undefined;
    guard.#message = s.message ?? undefined;
    guard.#baseline = s.baseline ?? undefined;
    return guard;
  }

  /**
   * The guard for a reloaded definition. Unchanged: the same guard, so a rollback holds. Only
   * `active` changed: a cutover from the colour serving now. Anything else changed: a new guard
   * that starts from the colour a rollback would return to, so a fix to a rolled-back colour is
   * watched again, and keeps the window of each colour that did not change.
   */
  static carry(previous: Guard | undefined, config: GuardConfig, clock: Clock): { guard: Guard; watch: GuardWatch | undefined } {
    if (previous === undefined) return { guard: new Guard(config, clock), watch: undefined };
    if (previous.#config.fingerprint === config.fingerprint) {
      previous.#config = config;
      return { guard: previous, watch: previous.#configure(config.active, undefined) };
    }
    const guard = new Guard(config, clock);
    const start = previous.#fallback ?? previous.#active;
    guard.#configured = guard.#active = start;
    for (const colour of ['blue', 'green'] as const) {
      const same = previous.config.colours[colour] === config.colours[colour] && previous.config.def.analysisWindowMs === config.def.analysisWindowMs;
      if (same) guard.#windows[colour] = previous.#windows[colour];
    }
    const baselineKept = previous.#state === 'guarding' && previous.config.colours[start] === config.colours[start];
    return { guard, watch: guard.#configure(config.active, baselineKept ? previous.#baseline : undefined) };
  }

  /** The definition this guard watches, as of the last reload. */
  get config(): GuardConfig {
    return this.#config;
  }

  get state(): GuardPhase {
    return this.#state;
  }

  /** The colour live traffic goes to, given the `active` of the snapshot a request started on. */
  effectiveActive(fileActive: Colour): Colour {
    return fileActive === this.#configured ? this.#active : fileActive;
  }

  /** When the next verdict is due (epoch ms); Infinity when there is nothing to judge. */
  get dueAt(): number {
    this.#followClockBack();
    return this.#state === 'guarding' ? Math.min(this.#lastVerdictAt + this.config.def.intervalMs, this.#until) : Infinity;
  }

  /** Starts watching `to` for `window`, ready to return to `from`. */
  cutover(from: Colour, to: Colour, baseline?: WindowStats): void {
    const now = this.#clock.now();
    this.#configured = to;
    this.#settle(to, now);
    if (from === to) return;
    // The old colour's last window of live traffic is what the new one is compared with; after
    // the cutover it sees only preview traffic. The new colour's preview traffic is forgotten.
    this.#baseline = baseline ?? this.#windows[from].stats();
    this.#windows[to].reset();
    this.#state = 'guarding';
    this.#fallback = from;
    this.#until = now + this.config.def.windowMs;
    this.#lastVerdictAt = now;
  }

  /** One outcome of a request served by `colour`. Failures in a row of a guarded colour roll back at once. */
  record(colour: Colour, failed: boolean, latencyMs: number): GuardDecision {
    const window = this.#windows[colour];
    window.record(failed, latencyMs);
    if (!failed || this.#state !== 'guarding' || colour !== this.#active) return NONE;
    const limit = this.config.def.consecutiveFailures;
    if (limit === undefined || window.consecutiveFailures < limit) return NONE;
    // Past the window the colour is accepted; the next verdict only has to say so.
    if (this.#clock.now() >= this.#until) return NONE;
    return this.#rollBack('consecutive_failures', `${window.consecutiveFailures} failures in a row >= consecutiveFailures ${limit}`, window.stats());
  }

  /** The verdict of one interval: failing rolls back; the window over without failing, stable. */
  tick(): GuardDecision {
    if (this.#state !== 'guarding') return NONE;
    this.#followClockBack();
    const now = this.#clock.now();
    this.#lastVerdictAt = now;
    const colour = this.#active;
    const stats = this.#windows[colour].stats();
    const verdict = judge(stats, this.#baseline, this.config.def.thresholds);
    if (verdict.outcome === 'failing') return this.#rollBack(verdict.reason ?? 'error_rate', verdict.message, stats);
    if (now < this.#until) return NONE;
    const from = this.#fallback;
    this.#settle(colour, now);
    const message = `${colour} held for ${formatMs(this.config.def.windowMs)} after the cutover from ${from}: ${verdict.message}`;
    return { kind: 'passed', service: this.config.service, colour, message };
  }

  toJSON(): GuardState {
    return {
      fingerprint: this.config.fingerprint,
      state: this.#state,
      configured: this.#configured,
      active: this.#active,
      fallback: this.#fallback ?? null,
      since: this.#since,
      until: this.#state === 'guarding' ? this.#until : null,
      reason: this.#reason ?? null,
      message: this.#message ?? null,
      baseline: this.#baseline ?? null,
    };
  }

  /** For `/status`: where the service stands and since when. */
  status() {
    const base = { state: this.#state, active: this.#active, since: new Date(this.#since).toISOString() };
    if (this.#state === 'guarding') return { ...base, guardingUntil: new Date(this.#until).toISOString(), rollbackTo: this.#fallback };
    if (this.#state === 'rolled-back') return { ...base, rolledBackFrom: this.#configured, reason: this.#reason, message: this.#message };
    return base;
  }

  /** The file's `active` as of a reload; a change is a cutover from the colour serving now. */
  #configure(fileActive: Colour, baseline: WindowStats | undefined): GuardWatch | undefined {
    if (fileActive === this.#configured) return undefined;
    const from = this.#active;
    this.cutover(from, fileActive, baseline);
    if (from === fileActive) return undefined;
    const message = `guarding ${fileActive} for ${formatMs(this.config.def.windowMs)} after the cutover from ${from}; failing rolls back to ${from}`;
    return { service: this.config.service, from, to: fileActive, until: this.#until, message };
  }

  /**
   * A wall clock stepped back (NTP, a resumed VM) leaves the last verdict in the future: the
   * next verdict is due at once, and the watch lasts at most one `window` from now.
   */
  #followClockBack(): void {
    const now = this.#clock.now();
    if (this.#state !== 'guarding' || this.#lastVerdictAt <= now) return;
    this.#lastVerdictAt = now - this.config.def.intervalMs;
    this.#until = Math.min(this.#until, now + this.config.def.windowMs);
  }

  #rollBack(reason: RollbackReason, why: string, stats: WindowStats): GuardDecision {
    const from = this.#active;
    const to = this.#fallback as Colour;
    this.#state = 'rolled-back';
    this.#active = to;
    this.#fallback = undefined;
    this.#since = this.#clock.now();
    this.#reason = reason;
    this.#message = `${from} rolled back to ${to}: ${why}`;
    this.#baseline = undefined;
    return { kind: 'rollback', service: this.config.service, from, to, reason, message: this.#message, stats };
  }

  #settle(colour: Colour, now: number): void {
    this.#state = 'stable';
    this.#active = colour;
    this.#fallback = undefined;
    this.#since = now;
    this.#reason = undefined;
    this.#message = undefined;
    this.#baseline = undefined;
  }
}

function formatMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A decision worth acting on: a rollback or a passed guard. */
export type GuardEvent = Exclude<GuardDecision, { kind: 'none' }>;
