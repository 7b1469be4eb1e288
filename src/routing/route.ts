import type { RouteDef } from '../config/snapshot.js';
import { firstSegment } from './match.js';
import { withoutPathParameters } from './normalize.js';
import { RequestView } from './request-view.js';

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

/**
 * The routes a path can possibly match, in file order: those whose `path`/`exact` pins the
 * path's first segment, and every route that pins none. First match over that list is first
 * match over all routes (a skipped route could never have matched), while a request under
 * `/bench` no longer tests the dozens of rules written for `/api/…`, `/shop`, `/help`….
 */
export class RouteIndex {
  readonly #bySegment = new Map<string, readonly RouteDef[]>();
  readonly #unpinned: readonly RouteDef[];

  constructor(routes: readonly RouteDef[]) {
    const segments = routes.map((route) => route.conditions.find((c) => c.segment !== undefined)?.segment);
    this.#unpinned = routes.filter((_, i) => segments[i] === undefined);
    for (const segment of new Set(segments)) {
      if (segment !== undefined) this.#bySegment.set(segment, routes.filter((_, i) => segments[i] === undefined || segments[i] === segment));
    }
  }

  candidates(path: string): readonly RouteDef[] {
    return this.#bySegment.get(firstSegment(path)) ?? this.#unpinned;
  }
}

/**
 * `/secret;jsessionid=1` is `/secret` to a servlet container, and `/;/admin` is `/admin`: a
 * path whose parameters, removed, would pick another route could reach a resource its own
 * route guards. Such a request is refused (400); one whose parameters change nothing (a
 * `/cars;color=red` under `path: /cars`) is forwarded as it came.
 */
export function sameRouteWithoutParameters(routes: readonly RouteDef[], view: RequestView, route: RouteDef | undefined): boolean {
  const stripped = withoutPathParameters(view.path);
  if (stripped === undefined) return true;
  if (typeof stripped !== 'string') return false;
  const other = new RequestView(view.method, stripped, view.search, view.host, view.headers);
  other.audience = view.audience;
  return firstMatch(routes, other) === route;
}
