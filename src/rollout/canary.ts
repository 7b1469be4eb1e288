import type { CanaryDef } from '../config/snapshot.js';
import type { Clock } from '../observe/clock.js';
import type { Side } from '../routing/decide.js';
import { judge, type FailReason, type Verdict } from './analysis.js';
import { SlidingWindow } from './windows.js';

export type CanaryState = 'running' | 'ejected' | 'promoted';
export type EjectReason = FailReason | 'consecutive_failures' | 'manual';
/** What took the decision: the periodic verdict, a request (failures in a row), an operator, a new file. */
export type CanaryTrigger = 'analysis' | 'request' | 'admin' | 'reload' | 'start';

/**
 * A canary's decisions in a plain form that can be written down and read back (a state file):
 * everything else (windows, verdicts) is evidence that is rebuilt from traffic.
 */
export interface CanaryRecord {
  readonly state: CanaryState;
  /** Index in `steps` of the step reached; -1 before the first step, or without steps. */
  readonly step: number;
  /** The effective weight: 0 while ejected. */
  readonly weight: number;
  readonly ejectedReason: EjectReason | undefined;
  /** The last decision with its numbers. */
  readonly message: string;
  /** When the state last changed (ms since the epoch). */
  readonly since: number;
  /** When the rollout last moved (its start, a step, a readmission): the next step is due stepInterval after it. */
  readonly lastStepAt: number;
}

export interface CanaryChange {
  readonly kind: 'ejection' | 'readmission' | 'step' | 'promotion';
  readonly trigger: CanaryTrigger;
  readonly reason: EjectReason | undefined;
  readonly fromWeight: number;
  readonly toWeight: number;
  readonly message: string;
}

/** Told about every decision, to log, count and audit it; must not throw. */
export interface CanaryEvents {
  changed(canary: CanaryRuntime, change: CanaryChange): void;
}

export const NO_CANARY_EVENTS: CanaryEvents = { changed() {} };

/**
 * The live state of one canary route: the outcomes of both sides in sliding windows, and the
 * effective weight the proxy routes by. The analysis loop judges it every interval; failures in
 * a row eject it on the request path, at once. Ejection holds until an operator readmits it or
 * the route's canary block changes (a new runtime is then built from the new block).
 */
export class CanaryRuntime {
  readonly canaryWindow: SlidingWindow;
  readonly stableWindow: SlidingWindow;
  /** Read by every request of the route: a plain field, changed only by the methods below. */
  weight: number;
  #state: CanaryState;
  #step: number;
  #reason: EjectReason | undefined;
  #message: string;
  #since: number;
  #lastStepAt: number;
  #nextJudgeAt: number;
  #verdict: (Verdict & { at: number }) | undefined;
  #retired = false;
  readonly #ejectAfter: number | undefined;

  constructor(
    readonly route: string,
    readonly def: CanaryDef,
    private readonly clock: Clock,
    private readonly events: CanaryEvents = NO_CANARY_EVENTS,
  ) {
    const now = clock.now();
    this.canaryWindow = new SlidingWindow(def.analysis.windowMs, clock);
    this.stableWindow = new SlidingWindow(def.analysis.windowMs, clock);
    this.#ejectAfter = def.analysis.consecutiveFailures;
    this.weight = def.weight;
    this.#step = stepOf(def.steps, def.weight);
    this.#state = this.#reached100() ? 'promoted' : 'running';
    this.#reason = undefined;
    this.#message = `started at ${def.weight} %`;
    this.#since = now;
    this.#lastStepAt = now;
    this.#nextJudgeAt = now + def.analysis.intervalMs;
  }

  get state(): CanaryState {
    return this.#state;
  }

  /** When the next verdict is due (ms since the epoch), for the loop's timer. */
  get nextJudgeAt(): number {
    return this.#nextJudgeAt;
  }

  get lastVerdict(): (Verdict & { at: number }) | undefined {
    return this.#verdict;
  }

  /**
   * One proxied request's outcome (failures: 5xx, connect errors, resets, timeouts). O(1), no
   * allocation. `consecutiveFailures` canary failures in a row eject here, not at the next verdict.
   */
  record(side: Side, failed: boolean, latencyMs: number): void {
    if (side === 'stable') {
      this.stableWindow.record(failed, latencyMs);
      return;
    }
    const window = this.canaryWindow;
    window.record(failed, latencyMs);
    const limit = this.#ejectAfter;
    if (failed && limit !== undefined && window.consecutiveFailures >= limit && this.#state !== 'ejected') {
      this.#eject('consecutive_failures', 'request', `${window.consecutiveFailures} canary failures in a row ≥ consecutiveFailures ${limit}`);
    }
  }

  /**
   * The periodic verdict, when due: failing ejects; healthy advances one step once
   * `stepInterval` has passed since the last one; inconclusive (too little traffic) holds.
   */
  evaluate(now: number): void {
    // A wall clock stepped back (NTP, a resumed VM) leaves the due time and the last step in the
    // future: judged now, and the step countdown restarted, rather than waiting out the step.
    if (this.#nextJudgeAt - now > this.def.analysis.intervalMs) this.#nextJudgeAt = now;
    if (this.#lastStepAt > now) this.#lastStepAt = now;
    if (now < this.#nextJudgeAt) return;
    this.#nextJudgeAt = now + this.def.analysis.intervalMs;
    if (this.#state === 'ejected') return;
    const verdict = judge(this.canaryWindow.stats(), this.stableWindow.stats(), this.def.analysis.thresholds);
    this.#verdict = { ...verdict, at: now };
    if (verdict.outcome === 'failing') {
      this.#eject(verdict.reason ?? 'error_rate', 'analysis', verdict.message);
      return;
    }
    const { steps, stepIntervalMs } = this.def;
    if (verdict.outcome !== 'healthy' || this.#state !== 'running' || steps === undefined || stepIntervalMs === undefined) return;
    const next = steps[this.#step + 1];
    if (next === undefined || now - this.#lastStepAt < stepIntervalMs) return;
    const from = this.weight;
    this.#step += 1;
    this.weight = next;
    this.#lastStepAt = now;
    if (this.#reached100()) {
      this.#set('promoted', undefined, `reached 100 % while healthy (${verdict.message}): make ${this.def.service} the route's "to"`, now);
      this.#announce({ kind: 'promotion', trigger: 'analysis', reason: undefined, fromWeight: from, toWeight: next, message: this.#message });
    } else {
      this.#message = `step ${this.#step + 1}/${steps.length}: ${from} % → ${next} % (${verdict.message})`;
      this.#announce({ kind: 'step', trigger: 'analysis', reason: undefined, fromWeight: from, toWeight: next, message: this.#message });
    }
  }

  /** An operator's ejection; false when it already was ejected. */
  eject(trigger: CanaryTrigger = 'admin'): boolean {
    if (this.#state === 'ejected') return false;
    this.#eject('manual', trigger, 'ejected by an operator');
    return true;
  }

  /**
   * Back to running at the file's weight (the rollout starts over from it) with fresh windows:
   * what went wrong before is no evidence about the release being readmitted. False when it
   * was not ejected.
   */
  readmit(trigger: CanaryTrigger = 'admin'): boolean {
    if (this.#state !== 'ejected') return false;
    const now = this.clock.now();
    const was = this.#reason;
    this.canaryWindow.reset();
    this.stableWindow.reset();
    this.weight = this.def.weight;
    this.#step = stepOf(this.def.steps, this.def.weight);
    this.#lastStepAt = now;
    this.#nextJudgeAt = now + this.def.analysis.intervalMs;
    this.#verdict = undefined;
    this.#set(this.#reached100() ? 'promoted' : 'running', undefined, `readmitted at ${this.weight} % (was ejected: ${was ?? 'unknown'})`, now);
    this.#announce({ kind: 'readmission', trigger, reason: was, fromWeight: 0, toWeight: this.weight, message: this.#message });
    return true;
  }

  /**
   * This runtime replaces `previous`, whose canary block was changed in the file. A new release
   * ends the old one's ejection, and says so as a readmission.
   */
  succeed(previous: CanaryRuntime): void {
    if (previous.state !== 'ejected') return;
    this.succeedSaved(previous.#reason, 'reload');
  }

  /**
   * The same for an ejection read from the state file at start (`trigger: 'start'`), taken for a
   * canary block that has changed (or a route renamed) since: a restart says what a reload would.
   */
  succeedSaved(reason: EjectReason | undefined, trigger: CanaryTrigger): void {
    this.#message = `a new canary block in the file ends the ejection (${reason ?? 'unknown'}); starting at ${this.weight} %`;
    this.#announce({ kind: 'readmission', trigger, reason, fromWeight: 0, toWeight: this.weight, message: this.#message });
  }

  /**
   * Replaced by a reload (a new canary block, or the route is gone). Requests still in flight on
   * the old configuration may finish here; what they decide concerns no running canary, so it is
   * no longer announced.
   */
  retire(): void {
    this.#retired = true;
  }

  toRecord(): CanaryRecord {
    return { state: this.#state, step: this.#step, weight: this.weight, ejectedReason: this.#reason, message: this.#message, since: this.#since, lastStepAt: this.#lastStepAt };
  }

  /** Takes back decisions written by `toRecord` for this same canary block (a restart). */
  restore(record: CanaryRecord): void {
    const steps = this.def.steps;
    this.#state = record.state;
    this.#step = steps === undefined ? -1 : Math.max(-1, Math.min(record.step, steps.length - 1));
    // The rollout starts at the file's weight, which may lie between steps (or above the last):
    // a step below it was never taken, so it never lowers the weight.
    this.weight = record.state === 'ejected' ? 0 : Math.max(this.def.weight, this.#step >= 0 ? (steps?.[this.#step] ?? 0) : 0);
    this.#reason = record.state === 'ejected' ? record.ejectedReason : undefined;
    this.#message = record.message;
    this.#since = record.since;
    // The countdown to the next step goes on from the last one, so a proxy restarted more often
    // than stepInterval still advances; a time ahead of the clock (set back since) counts from now.
    if (typeof record.lastStepAt === 'number') this.#lastStepAt = Math.min(record.lastStepAt, this.clock.now());
  }

  #eject(reason: EjectReason, trigger: CanaryTrigger, message: string): void {
    const from = this.weight;
    this.weight = 0;
    this.#set('ejected', reason, message, this.clock.now());
    this.#announce({ kind: 'ejection', trigger, reason, fromWeight: from, toWeight: 0, message });
  }

  #set(state: CanaryState, reason: EjectReason | undefined, message: string, now: number): void {
    this.#state = state;
    this.#reason = reason;
    this.#message = message;
    this.#since = now;
  }

  #announce(change: CanaryChange): void {
    if (!this.#retired) this.events.changed(this, change);
  }

  #reached100(): boolean {
    return this.def.steps !== undefined && this.weight >= 100;
  }
}

/** The last step at or below `weight`: the rollout continues from the next one. */
function stepOf(steps: readonly number[] | undefined, weight: number): number {
  if (steps === undefined) return -1;
  let step = -1;
  steps.forEach((s, i) => {
    if (s <= weight) step = i;
  });
  return step;
}
