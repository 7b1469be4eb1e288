import type { RouteDef } from '../config/snapshot.js';
import { firstSegment } from './match.js';
import { withoutPathParameters } from './normalize.js';
import { RequestView } from './request-view.js';

/** First route, in file order, whose every condition holds (SPEC §1.2). */
export function firstMatch(routes: readonly RouteDef[], request: RequestView): RouteDef | undefined {
  for (const route of routes) if (holds(route, request)) return route;
  return undefined;
}

function holds(route: RouteDef, request: RequestView): boolean {
  for (const condition of route.conditions) if (!condition.test(request)) return false;
  return true;
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
  /** The routes that pin each first segment, in file order (the unpinned ones are kept once, apart). */
  readonly #bySegment = new Map<string, RouteDef[]>();
  readonly #unpinned: readonly RouteDef[];

  constructor(routes: readonly RouteDef[]) {
    const unpinned: RouteDef[] = [];
    for (const route of routes) {
      const segment = route.conditions.find((c) => c.segment !== undefined)?.segment;
      if (segment === undefined) {
        unpinned.push(route);
        continue;
      }
      let pinned = this.#bySegment.get(segment);
      if (pinned === undefined) this.#bySegment.set(segment, (pinned = []));
      pinned.push(route);
    }
    this.#unpinned = unpinned;
  }

  /**
   * `firstMatch(candidates(path), request)` without building that list: the segment's routes
   * and the unpinned ones are walked together in file order. Building the merged list for every
   * segment up front costs segments × unpinned routes (seconds and hundreds of MiB at 10,000 routes).
   */
  firstMatch(request: RequestView): RouteDef | undefined {
    const pinned = this.#bySegment.get(firstSegment(request.path));
    const unpinned = this.#unpinned;
    if (pinned === undefined) return firstMatch(unpinned, request);
    const pinnedCount = pinned.length;
    const unpinnedCount = unpinned.length;
    let i = 0;
    let j = 0;
    while (i < pinnedCount || j < unpinnedCount) {
      const route = j === unpinnedCount || (i < pinnedCount && (pinned[i] as RouteDef).index < (unpinned[j] as RouteDef).index) ? (pinned[i++] as RouteDef) : (unpinned[j++] as RouteDef);
      if (holds(route, request)) return route;
    }
    return undefined;
  }

  /** The routes a path can possibly match, in file order (built on each call: for tests and tools). */
  candidates(path: string): readonly RouteDef[] {
    const pinned = this.#bySegment.get(firstSegment(path));
    if (pinned === undefined) return this.#unpinned;
    return [...pinned, ...this.#unpinned].sort((a, b) => a.index - b.index);
  }
}

/**
 * `/secret;jsessionid=1` is `/secret` to a servlet container, and `/;/admin` is `/admin`: a
 * path whose parameters, removed, would pick another route could reach a resource its own
 * route guards. Such a request is refused (400); one whose parameters change nothing (a
 * `/cars;color=red` under `path: /cars`) is forwarded as it came.
 */
export function sameRouteWithoutParameters(index: RouteIndex, view: RequestView, route: RouteDef | undefined): boolean {
  const stripped = withoutPathParameters(view.path);
  if (stripped === undefined) return true;
  if (typeof stripped !== 'string') return false;
  const other = new RequestView(view.method, stripped, view.search, view.host, view.headers);
  other.audience = view.audience;
  return index.firstMatch(other) === route;
}
