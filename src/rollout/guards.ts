import { MAX_TIMER_MS } from '../config/duration.js';
import type { Snapshot } from '../config/snapshot.js';
import type { Clock } from '../observe/clock.js';
import { Guard, guardConfigOf, type GuardEvent, type GuardWatch } from './guard.js';
import type { GuardState } from './guard-state.js';

/**
 * The guards of the running configuration, one per blue/green service with `guard`. One object
 * lives as long as the app: reloads reconcile it, requests find their service's guard in it,
 * and its own timer takes each verdict when it is due.
 */
export class Guards {
  #guards = new Map<string, Guard>();
  #timer: NodeJS.Timeout | undefined;
  #onEvent: ((event: GuardEvent) => void) | undefined;

  constructor(private readonly clock: Clock) {}

  /**
   * Brings the guards in line with a snapshot: at start (with the state file's records, which
   * count only where their fingerprint still matches) and after every successful reload.
   * Returns the cutovers now being watched.
   */
  reconcile(snapshot: Snapshot, saved?: Readonly<Record<string, unknown>>): GuardWatch[] {
    const next = new Map<string, Guard>();
    const watches: GuardWatch[] = [];
    for (const def of snapshot.services.values()) {
      const config = guardConfigOf(def);
      if (config === undefined) continue;
      const previous = this.#guards.get(def.name) ?? (saved ? Guard.restore(saved[def.name], config, this.clock) : undefined);
      const { guard, watch } = Guard.carry(previous, config, this.clock);
      next.set(def.name, guard);
      if (watch) watches.push(watch);
    }
    this.#guards = next;
    this.#schedule();
    return watches;
  }

  get(service: string): Guard | undefined {
    return this.#guards.get(service);
  }

  /** Takes the verdict of every guard that is due; returns what happened. */
  tick(): GuardEvent[] {
    const now = this.clock.now();
    const events: GuardEvent[] = [];
    for (const guard of this.#guards.values()) {
      if (guard.dueAt > now) continue;
      const decision = guard.tick();
      if (decision.kind !== 'none') events.push(decision);
    }
    return events;
  }

  /** Every guard's state, by service: the `services` part of the state file. */
  toJSON(): Record<string, GuardState> {
    return Object.fromEntries([...this.#guards].map(([name, guard]) => [name, guard.toJSON()]));
  }

  /** Runs `tick` whenever a verdict is due and hands each event to `onEvent` (which should not throw). */
  start(onEvent: (event: GuardEvent) => void): void {
    this.#onEvent = onEvent;
    this.#schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#onEvent = undefined;
  }

  /** One timer for the earliest due verdict; none while nothing is being guarded. */
  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const onEvent = this.#onEvent;
    if (onEvent === undefined) return;
    let due = Infinity;
    for (const guard of this.#guards.values()) due = Math.min(due, guard.dueAt);
    if (due === Infinity) return;
    // A later verdict is simply re-planned when this timer fires.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, due - this.clock.now()));
    this.#timer = setTimeout(() => {
      for (const event of this.tick()) {
        try {
          onEvent(event);
        } catch {
          // Reporting a decision must not stop the guards that take the next ones.
        }
      }
      this.#schedule();
    }, delay);
    this.#timer.unref();
  }
}

