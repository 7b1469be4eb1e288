import type { IncomingMessage } from 'node:http';
import type { Colour, ShadowDef } from '../config/snapshot.js';
import type { Generation } from '../config/store.js';
import { systemClock, systemRandom, type Clock, type Random } from '../observe/clock.js';
import { EVENT, type Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { ResponseTap } from '../proxy/forward.js';
import type { ForwardPlan, Guards } from '../proxy/plan.js';
import { callerIdsIn } from '../routing/identity.js';
import { liveColour } from '../upstream/bluegreen.js';
import { hasRequestBody } from '../proxy/request-body.js';
import type { ServiceRuntime } from '../upstream/service.js';
import type { Difference, Verdict } from './compare.js';
import { ShadowCopy, type ComparisonResult, type CopyReport, type DropReason } from './copy.js';
import { MismatchSampler } from './mismatch-log.js';

/** RFC 9110 §13.1 preconditions. */
const CONDITIONAL_FIELDS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'] as const;

/** What a route's shadow has done since start: `/status` shows it beside the route. */
export interface ShadowTally {
  compared: Record<ComparisonResult, number>;
  dropped: number;
}

export interface ShadowDeps {
  metrics: Metrics;
  logger: Logger;
  random?: Random;
  /** Paces the mismatch log. */
  clock?: Clock;
  /** Cutover guards: after a rollback, copies to a blue/green shadow follow live traffic. */
  guards?: Guards | undefined;
}

/**
 * Copies a sample of a route's requests to its shadow service (SPEC §1.5). Copies are bounded
 * per route (`maxConcurrent`, counted here so the bound survives reloads), live on their own
 * deadline, and feed nothing that decides about live traffic: no outlier detection, canary
 * window or cutover guard ever hears of them.
 */
export class ShadowMirror {
  readonly #inflight = new Map<string, number>();
  readonly #tallies = new Map<string, ShadowTally>();
  readonly #random: Random;
  readonly #sampler: MismatchSampler;

  constructor(private readonly deps: ShadowDeps) {
    this.#random = deps.random ?? systemRandom;
    this.#sampler = new MismatchSampler(deps.clock ?? systemClock);
  }

  /** The route's comparisons and drops since start, if it has a shadow that ever sampled. */
  tally(route: string): ShadowTally | undefined {
    return this.#tallies.get(route);
  }

  #tallyOf(route: string): ShadowTally {
    let tally = this.#tallies.get(route);
    if (tally === undefined) this.#tallies.set(route, (tally = { compared: { match: 0, mismatch: 0, error: 0, skipped: 0 }, dropped: 0 }));
    return tally;
  }

  /** After a reload: forgets the tallies and mismatch pacing of routes the file no longer has. */
  retainRoutes(routes: ReadonlySet<string>): void {
    for (const route of this.#tallies.keys()) if (!routes.has(route)) this.#tallies.delete(route);
    this.#sampler.retain(routes);
  }

  /** Copies in flight for `route` now. */
  inflight(route: string): number {
    return this.#inflight.get(route) ?? 0;
  }

  /**
   * Called for a request forwarded on a route with a shadow, after its primary exchange was
   * created. Returns the tap through which the primary's answer is compared, if it will be.
   * Never throws: a copy's trouble is never the client's.
   */
  copy(generation: Generation, req: IncomingMessage, plan: ForwardPlan, def: ShadowDef, headers: readonly string[], path: string, requestId: string): ResponseTap | undefined {
    try {
      return this.#copy(generation, req, plan.route.name, def, headers, path, requestId);
    } catch (error) {
      this.deps.logger.error({ event: EVENT.internalError, requestId, route: plan.route.name, err: error }, 'shadow copy failed');
      return undefined;
    }
  }

  #copy(generation: Generation, req: IncomingMessage, route: string, def: ShadowDef, headers: readonly string[], path: string, requestId: string): ResponseTap | undefined {
    const method = req.method ?? 'GET';
    if (!def.methods.has(method) || !(this.#random() * 100 < def.percent)) return undefined;
    const { metrics } = this.deps;
    const tally = this.#tallyOf(route);
    const compared = (result: ComparisonResult): void => {
      if (!def.compare) return;
      metrics.shadowComparisons.labels(route, result).inc();
      tally.compared[result]++;
    };
    const countDrop = (reason: DropReason): void => {
      metrics.shadowDropped.labels(route, reason).inc();
      tally.dropped++;
    };
    const drop = (reason: DropReason): undefined => {
      countDrop(reason);
      compared('skipped');
      return undefined;
    };
    if (this.inflight(route) >= def.maxConcurrent) return drop('saturated');
    const hasBody = hasRequestBody(req);
    if (hasBody && Number(req.headers['content-length'] ?? 0) > def.maxBodyBytes) return drop('body_too_large');

    const target = shadowTarget(generation, def.service, this.deps.guards);
    const colour = target?.colour ?? '';
    const endpoint = target?.runtime.pick();
    if (endpoint === undefined) {
      metrics.recordRequest(route, def.service, colour, 'shadow', 0, 0);
      compared('error');
      return undefined;
    }

    this.#inflight.set(route, this.inflight(route) + 1);
    const report: CopyReport = {
      released: () => {
        const left = this.inflight(route) - 1;
        if (left > 0) this.#inflight.set(route, left);
        else this.#inflight.delete(route);
      },
      dropped: countDrop,
      exchanged: (status, seconds) => metrics.recordRequest(route, def.service, colour, 'shadow', status, seconds),
      compared: (result, verdict) => {
        compared(result);
        if (verdict?.result === 'mismatch') this.#logMismatch(route, def.service, requestId, method, verdict);
      },
      failed: (error) => this.deps.logger.error({ event: EVENT.internalError, requestId, route, err: error }, 'shadow copy failed'),
    };
    const conditional = CONDITIONAL_FIELDS.some((name) => req.headers[name] !== undefined);
    const copy = new ShadowCopy({ route, def, colour, endpoint, method, path, headers, hidden: def.compare ? callerIds(generation, req) : undefined, conditional }, report);
    copy.start(req, hasBody, generation.snapshot.limits.maxBodyBytes);
    return def.compare ? copy : undefined;
  }

  #logMismatch(route: string, service: string, requestId: string, method: string, verdict: Extract<Verdict, { result: 'mismatch' }>): void {
    const suppressed = this.#sampler.take(route);
    if (suppressed === undefined) return;
    const difference: Difference = verdict.difference;
    this.deps.logger.info(
      { event: EVENT.shadowMismatch, route, shadow: service, requestId, method, ...difference, suppressed },
      `shadow ${service} of route ${route} answered differently (${describe(difference)})`,
    );
  }
}

/** The shadow service's endpoint group: for a blue/green service, the colour live traffic gets. */
function shadowTarget(generation: Generation, name: string, guards: Guards | undefined): { runtime: ServiceRuntime; colour: Colour | '' } | undefined {
  const service = generation.services.get(name);
  if (service === undefined) return undefined;
  const colours = service.def.colours;
  if (service.colours === undefined || colours === undefined) return { runtime: service, colour: '' };
  const active = liveColour(colours, guards?.get(name));
  return { runtime: service.colours[active], colour: active };
}

function describe(difference: Difference): string {
  const parts: string[] = [];
  if (difference.status.primary !== difference.status.shadow) parts.push(`status ${difference.status.primary} vs ${difference.status.shadow}`);
  if (difference.headers.length > 0) parts.push(`headers ${difference.headers.join(', ')}`);
  if (difference.body?.kind === 'json') parts.push(`${difference.body.differences.length}${difference.body.truncated ? '+' : ''} JSON path(s)`);
  if (difference.body?.kind === 'bytes') parts.push('body');
  return parts.join('; ');
}

/** Keys a mismatch may not name: the ids the file's `identity` reads from this request. */
function callerIds(generation: Generation, req: IncomingMessage): ReadonlySet<string> | undefined {
  const def = generation.snapshot.identity;
  const ids = def === undefined ? [] : callerIdsIn(def, req.headers);
  return ids.length === 0 ? undefined : new Set(ids);
}
