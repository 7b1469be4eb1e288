import type { RouteDef, Snapshot } from '../config/snapshot.js';
import { inPercent } from './bucket.js';
import type { RequestView } from './request-view.js';
import { traceMatch, firstMatch, type RouteTrace } from './route.js';

export type Side = 'stable' | 'canary';

/** Where a request goes, before any endpoint is picked. */
export interface Decision {
  readonly route: RouteDef | undefined;
  /** The service chosen for a proxy route (the canary's on the canary side); undefined otherwise. */
  readonly service: string | undefined;
  readonly side: Side;
}

/**
 * The routing decision, shared by the proxy and by explain so that they can never disagree:
 * first matching route, then the canary split by the caller's bucket (seeded by the route).
 * `view.audience` must be set when the snapshot uses callers.
 */
export function decide(snapshot: Snapshot, view: RequestView): Decision {
  return decideFor(firstMatch(snapshot.routes, view), view);
}

export function explainDecision(snapshot: Snapshot, view: RequestView): Decision & { trace: RouteTrace } {
  const trace = traceMatch(snapshot.routes, view);
  return { ...decideFor(trace.route, view), trace };
}

function decideFor(route: RouteDef | undefined, view: RequestView): Decision {
  if (route === undefined || route.action.kind !== 'proxy') return { route, service: undefined, side: 'stable' };
  const { canary, service } = route.action;
  if (canary !== undefined && view.audience !== undefined && inPercent(canary.seed, view.audience.caller.id, canary.weight)) {
    return { route, service: canary.service, side: 'canary' };
  }
  return { route, service, side: 'stable' };
}
