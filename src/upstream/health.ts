import type { Dispatcher } from 'undici';
import type { HealthDef } from '../config/snapshot.js';
import { runtimesOf, type Generation } from '../config/store.js';
import type { Endpoint } from './endpoint.js';
import type { ServiceRuntime } from './service.js';

/** Failed checks in a row that take an endpoint out, passed ones that bring it back (HAProxy's fall and rise). */
export const FALL = 2;
const RISE = 2;

export interface HealthEvents {
  unhealthy(service: string, endpoint: Endpoint, problem: string, failures: number): void;
  healthy(service: string, endpoint: Endpoint): void;
}

/**
 * Active health checks (SPEC §1.1): every endpoint of a service with `health:` gets a GET of
 * its path every interval, on the endpoint's own pool. One checker per service runtime, so a
 * reload that leaves a service unchanged leaves its checks, and their verdicts, running.
 */
export class HealthChecks {
  readonly #checkers = new Map<ServiceRuntime, Checker>();
  #stopped = false;

  constructor(private readonly events: HealthEvents) {}

  /**
   * Starts checks for the generation's runtimes that have none; stops those of runtimes gone.
   * Once stopped (a drain), it starts none: a reload during the drain must not revive them.
   */
  reconcile(generation: Generation): void {
    if (this.#stopped) return;
    const live = new Set<ServiceRuntime>();
    for (const runtime of runtimesOf(generation)) {
      const def = runtime.def.health;
      if (def === undefined || runtime.endpoints.length === 0) continue;
      live.add(runtime);
      if (this.#checkers.has(runtime)) continue;
      const checker = new Checker(runtime, def, this.events);
      this.#checkers.set(runtime, checker);
      checker.start();
    }
    for (const [runtime, checker] of this.#checkers) {
      if (live.has(runtime)) continue;
      checker.stop();
      this.#checkers.delete(runtime);
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const checker of this.#checkers.values()) checker.stop();
    this.#checkers.clear();
  }
}

class Checker {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Checks in flight; an endpoint slower than the interval is not checked twice at once. */
  readonly #running = new Map<Endpoint, AbortController>();
  /** Passed checks in a row when positive, failed ones when negative. */
  readonly #streak = new Map<Endpoint, number>();

  constructor(
    private readonly runtime: ServiceRuntime,
    private readonly def: HealthDef,
    private readonly events: HealthEvents,
  ) {}

  start(): void {
    this.#round();
    this.#timer = setInterval(() => this.#round(), this.def.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const controller of this.#running.values()) controller.abort();
  }

  #round(): void {
    for (const endpoint of this.runtime.endpoints) if (!this.#running.has(endpoint)) void this.#check(endpoint);
  }

  async #check(endpoint: Endpoint): Promise<void> {
    const controller = new AbortController();
    this.#running.set(endpoint, controller);
    // Paced: thousands of endpoints checked in the same instant would make ficus itself too busy
    // to read their answers within the timeout, and take healthy endpoints out.
    if (!takeCheckSlot()) {
      await checkSlotFreed(this);
      if (controller.signal.aborted) {
        releaseCheckSlot();
        this.#running.delete(endpoint);
        return;
      }
    }
    // undici's own timers tick in whole seconds; a check's deadline is often shorter.
    const timer = setTimeout(() => controller.abort(), this.def.timeoutMs);
    let problem: string | undefined;
    try {
      const response = await endpoint.pool.request({
        method: 'GET',
        path: endpoint.def.basePath + this.def.path,
        headers: { 'user-agent': 'ficus-health-check' },
        servername: endpoint.servername,
        signal: controller.signal,
      } as Dispatcher.RequestOptions<null>);
      // With the signal, a body still coming at the deadline fails the check; without it, dump()
      // resolves once the aborted body closes, and the late check would pass.
      await response.body.dump({ limit: 128 * 1024, signal: controller.signal });
      if (!this.#passes(response.statusCode)) problem = `status ${response.statusCode}`;
    } catch (error) {
      const err = error as { code?: string; message?: string };
      problem = controller.signal.aborted ? `no answer within ${this.def.timeoutMs} ms` : (err.code ?? err.message ?? String(error));
    } finally {
      clearTimeout(timer);
      releaseCheckSlot();
      this.#running.delete(endpoint);
    }
    if (!this.#stopped) this.#record(endpoint, problem);
  }

  #passes(status: number): boolean {
    return this.def.expect === undefined ? status >= 200 && status < 400 : status === this.def.expect;
  }

  #record(endpoint: Endpoint, problem: string | undefined): void {
    const first = !this.#streak.has(endpoint);
    const streak = this.#streak.get(endpoint) ?? 0;
    const next = problem === undefined ? Math.max(streak, 0) + 1 : Math.min(streak, 0) - 1;
    this.#streak.set(endpoint, next);
    const name = this.runtime.def.name;
    if (problem === undefined && !endpoint.healthy && next >= RISE) {
      this.runtime.setHealthy(endpoint, true);
      this.events.healthy(name, endpoint);
    } else if (problem !== undefined && endpoint.healthy && (first || -next >= FALL)) {
      // An endpoint in service only because nothing was known of it yet (a start, a changed
      // definition) leaves at its first failed check, as HAProxy's default `init-state up` does.
      this.runtime.setHealthy(endpoint, false);
      this.events.unhealthy(name, endpoint, problem, -next);
    }
  }
}

/** Health checks in flight at once, over every service: the rest wait their turn, their deadline not yet started. */
const MAX_CHECKS_IN_FLIGHT = 64;
let checksInFlight = 0;
/**
 * Waiting checks by service, served a service at a time in turn: one service's endpoints that
 * never answer each hold a place until their timeout, and in a single queue every other
 * service's checks would wait behind all of them, their verdicts late by many timeouts.
 */
const waitingChecks = new Map<Checker, (() => void)[]>();

function takeCheckSlot(): boolean {
  if (checksInFlight >= MAX_CHECKS_IN_FLIGHT) return false;
  checksInFlight++;
  return true;
}

/** Resolves with a slot taken for the caller. */
function checkSlotFreed(checker: Checker): Promise<void> {
  return new Promise((resolve) => {
    const queue = waitingChecks.get(checker);
    if (queue === undefined) waitingChecks.set(checker, [resolve]);
    else queue.push(resolve);
  });
}

function releaseCheckSlot(): void {
  // A Map iterates in insertion order: the first checker is served, then goes to the back.
  for (const [checker, queue] of waitingChecks) {
    const next = queue.shift() as () => void;
    waitingChecks.delete(checker);
    if (queue.length > 0) waitingChecks.set(checker, queue);
    next();
    return;
  }
  checksInFlight--;
}
