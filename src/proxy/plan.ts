import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Colour, ColoursDef, RouteAction, RouteDef } from '../config/snapshot.js';
import type { Generation } from '../config/store.js';
import type { CanaryRuntime } from '../rollout/canary.js';
import type { Guard } from '../rollout/guard.js';
import { Audience } from '../routing/audience.js';
import { decide, REFUSED_METHODS, type Side } from '../routing/decide.js';
import { identify } from '../routing/identity.js';
import { normalizeTarget } from '../routing/normalize.js';
import { sameRouteWithoutParameters } from '../routing/route.js';
import { believedHeaders, clientScheme } from './headers.js';
import { hostName, RequestView } from '../routing/request-view.js';
import { chooseColour, liveColour } from '../upstream/bluegreen.js';
import type { ServiceRuntime } from '../upstream/service.js';

export type ProxyAction = Extract<RouteAction, { kind: 'proxy' }>;
export type RespondAction = Extract<RouteAction, { kind: 'respond' }>;

/** Answered by ficus itself with an error: nothing matched, or the request is not acceptable. */
export interface RefusePlan {
  readonly kind: 'refuse';
  readonly status: 400 | 404 | 405;
  /** Whether the connection is closed after the answer: the request itself was malformed. */
  readonly close: boolean;
  /** The normalized path, for the log; '' when the target could not be normalized. */
  readonly path: string;
  readonly extraHeaders: string[] | undefined;
}

export interface RespondPlan {
  readonly kind: 'respond';
  readonly route: RouteDef;
  readonly action: RespondAction;
  readonly path: string;
  readonly extraHeaders: string[] | undefined;
}

/** Everything decided about a request that goes to a service, before an endpoint is picked. */
export interface ForwardPlan {
  readonly kind: 'forward';
  readonly route: RouteDef;
  readonly action: ProxyAction;
  /** The normalized path (what matched) and the raw query, `?` included. */
  readonly path: string;
  readonly query: string;
  /** The authority the client asked for, with its port. */
  readonly host: string;
  readonly peer: string;
  /** Whether the peer is a trusted proxy, whose X-Forwarded-* are kept. */
  readonly trusted: boolean;
  readonly side: Side;
  /** The route's canary runtime, on canary routes only. */
  readonly canary: CanaryRuntime | undefined;
  /** The endpoint group to pick from: the chosen colour's for a blue/green service. */
  readonly service: ServiceRuntime;
  /** The service is one being migrated away from (the ledger's legacy share). */
  readonly legacy: boolean;
  readonly colour: Colour | '';
  readonly preview: boolean;
  readonly guard: Guard | undefined;
  /** The `x-ficus-toggles` value for the upstream, when a toggle is on for the caller. */
  readonly toggles: string | undefined;
  /** Headers for the client's response, such as a new anonymous id's cookie. */
  readonly extraHeaders: string[] | undefined;
  /** The id the caller was bucketed by, when anything reads it: deciding again with it gives the same draws. */
  readonly callerId: string | undefined;
}

export type Plan = RefusePlan | RespondPlan | ForwardPlan;

export interface Guards {
  get(service: string): Guard | undefined;
}

/**
 * The decision for one request, shared by plain HTTP and WebSocket upgrades so that both go
 * where the same request would: target normalized once, the caller identified, route and side
 * decided on the generation's effective canary weights, and the colour of a blue/green service
 * chosen (after a rollback, the guard's colour).
 */
export function planRequest(generation: Generation, req: IncomingMessage, guards: Guards | undefined, newId: () => string = randomUUID): Plan {
  const { snapshot } = generation;
  const method = req.method ?? 'GET';
  if (REFUSED_METHODS.has(method)) return refuse(405, false, '');
  const target = normalizeTarget(req.url ?? '');
  if (!target.ok) return refuse(400, true, '');

  const host = target.host ?? req.headers.host ?? '';
  const peer = req.socket.remoteAddress ?? '';
  const trusted = snapshot.trustsPeer(peer);
  // X-Forwarded-* from an untrusted peer is never forwarded (headers.ts): nor is it believed here.
  const believed = trusted || !snapshot.readsForwarding ? req.headers : believedHeaders(req.headers);
  // An absolute-form authority replaces Host (RFC 9112 §3.2.2) and is the Host sent upstream:
  // a `headers: { host }` condition must read that one, not the field it replaced.
  const headers = target.host === undefined ? believed : { ...believed, host: target.host };
  const view = new RequestView(method, target.path, target.query, hostName(host), headers);
  let extraHeaders: string[] | undefined;
  let callerId: string | undefined;
  if (snapshot.usesCaller) {
    const secure = trusted && clientScheme(req) === 'https';
    const caller = identify(snapshot.identity, headers, secure, newId);
    callerId = caller.id;
    view.audience = new Audience(snapshot.audience, caller, headers);
    if (caller.setCookie !== undefined) extraHeaders = ['set-cookie', caller.setCookie];
  }

  const decision = decide(snapshot, view, generation.canaries);
  const route = decision.route;
  if (!sameRouteWithoutParameters(snapshot.routeIndex, view, route)) return refuse(400, true, target.path, extraHeaders);
  if (route === undefined) return refuse(404, false, target.path, extraHeaders);
  const action = route.action;
  if (action.kind === 'respond') return { kind: 'respond', route, action, path: target.path, extraHeaders };

  let service = generation.services.get(decision.service as string) as ServiceRuntime;
  const legacy = service.def.legacy;
  let colour: Colour | '' = '';
  let preview = false;
  let guard: Guard | undefined;
  if (service.colours !== undefined) {
    const def = service.def.colours as ColoursDef;
    guard = guards?.get(service.def.name);
    const chosen = chooseColour(def, headers, liveColour(def, guard));
    colour = chosen.colour;
    preview = chosen.preview;
    service = service.colours[chosen.colour];
  }
  return {
    kind: 'forward',
    route,
    action,
    path: target.path,
    query: target.query,
    host,
    peer,
    trusted,
    side: decision.side,
    canary: generation.canaries[route.index],
    service,
    legacy,
    colour,
    preview,
    guard,
    toggles: view.audience?.togglesHeader(),
    extraHeaders,
    callerId,
  };
}

function refuse(status: RefusePlan['status'], close: boolean, path: string, extraHeaders?: string[]): RefusePlan {
  return { kind: 'refuse', status, close, path, extraHeaders };
}
