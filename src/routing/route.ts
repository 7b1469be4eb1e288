import type { RouteDef } from '../config/snapshot.js';
import type { RequestView } from './request-view.js';

/** First route, in file order, whose every condition holds (SPEC §1.2). */
export function firstMatch(routes: readonly RouteDef[], request: RequestView): RouteDef | undefined {
  outer: for (const route of routes) {
    for (const condition of route.conditions) if (!condition.test(request)) continue outer;
    return route;
  }
  return undefined;
}

export interface RouteTrace {
  route: RouteDef | undefined;
  /** For each route tried before the winner: the first condition that did not hold. */
  skipped: { route: string; failed: string }[];
}

/** The same decision as `firstMatch`, with the reasons earlier routes were passed over. */
export function traceMatch(routes: readonly RouteDef[], request: RequestView): RouteTrace {
  const skipped: RouteTrace['skipped'] = [];
  for (const route of routes) {
    const failed = route.conditions.find((c) => !c.test(request));
    if (!failed) return { route, skipped };
    skipped.push({ route: route.name, failed: failed.describe });
  }
  return { route: undefined, skipped };
}
