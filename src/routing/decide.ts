import type { RouteDef, Snapshot } from '../config/snapshot.js';
import { inPercent } from './bucket.js';
import type { RequestView } from './request-view.js';
import { traceMatch, type RouteTrace } from './route.js';

/** Refused before routing: ficus is no forward proxy (CONNECT), and TRACE would echo credentials back. */
export const REFUSED_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'TRACE']);

export type Side = 'stable' | 'canary';

/** Where a request goes, before any endpoint is picked. */
export interface Decision {
  readonly route: RouteDef | undefined;
  /** The service chosen for a proxy route (the canary's on the canary side); undefined otherwise. */
  readonly service: string | undefined;
  readonly side: Side;
}

/**
 * The canaries' effective weights by route index (0 while ejected, the current step during a
 * progressive rollout): the runtime state the analysis changes. Routes without an entry split
 * by the weight written in the file, as offline explain does.
 */
export type EffectiveWeights = readonly ({ readonly weight: number } | undefined)[];

/**
 * The routing decision, shared by the proxy and by explain so that they can never disagree:
 * first matching route, then the canary split by the caller's bucket (seeded by the route) at
 * the canary's effective weight. `view.audience` must be set when the snapshot uses callers.
 */
export function decide(snapshot: Snapshot, view: RequestView, live?: EffectiveWeights): Decision {
  return decideFor(snapshot.routeIndex.firstMatch(view), view, live);
}

export function explainDecision(snapshot: Snapshot, view: RequestView, live?: EffectiveWeights): Decision & { trace: RouteTrace } {
  const trace = traceMatch(snapshot.routes, view);
  return { ...decideFor(trace.route, view, live), trace };
}

/** The weight a canary route splits by right now: the runtime's, else the file's. */
export function effectiveWeight(route: RouteDef, live: EffectiveWeights | undefined): number | undefined {
  if (route.action.kind !== 'proxy' || route.action.canary === undefined) return undefined;
  return live?.[route.index]?.weight ?? route.action.canary.weight;
}

function decideFor(route: RouteDef | undefined, view: RequestView, live: EffectiveWeights | undefined): Decision {
  if (route === undefined || route.action.kind !== 'proxy') return { route, service: undefined, side: 'stable' };
  const { canary, service } = route.action;
  if (canary === undefined || view.audience === undefined) return { route, service, side: 'stable' };
  const weight = live?.[route.index]?.weight ?? canary.weight;
  if (inPercent(canary.seed, view.audience.caller.id, weight)) {
    return { route, service: canary.service, side: 'canary' };
  }
  return { route, service, side: 'stable' };
}
