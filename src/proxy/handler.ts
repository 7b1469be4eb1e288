import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Colour } from '../config/snapshot.js';
import type { Generation } from '../config/store.js';
import { AccessLog } from '../observe/access-log.js';
import { EVENT, type Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { Side } from '../routing/decide.js';
import type { Guard, GuardEvent } from '../rollout/guard.js';
import type { ShadowMirror } from '../shadow/mirror.js';
import type { Endpoint } from '../upstream/endpoint.js';
import type { ServiceRuntime } from '../upstream/service.js';
import { liveColour } from '../upstream/bluegreen.js';
import { holdPool } from '../upstream/pool-holds.js';
import type { Fault } from './errors.js';
import { Exchange, type ExchangeOwner, type ExchangeResult, type ResponseTap } from './forward.js';
import { readDuringDrain, waitForTurn } from './connection-turns.js';
import { countOutcome, judge, serviceFailed } from './outcome.js';
import { acceptRequestId, upstreamRequestHeaders } from './headers.js';
import { closingConnections, malformedBodies, sendConfigured, sendError } from './local-response.js';
import { planRequest, type ForwardPlan } from './plan.js';
import { requestIds } from './request-id.js';
import { discardWithin, hasRequestBody, RequestBody } from './request-body.js';
import { onSocketClose } from './socket-close.js';
import type { OpenLink, OpenRequests } from './open-requests.js';

export interface HandlerDeps {
  current: () => Generation;
  metrics: Metrics;
  logger: Logger;
  /** Requests being served; drain waits for it to reach zero. */
  inflight: {
    count: number;
    draining: boolean;
    onIdle?: (() => void) | undefined;
    /** Set when the drain timed out and cuts what is left: their access lines say `drain_timeout`. */
    expired?: boolean;
    /** Requests not yet finished, so that a drain can make the last one on each connection say `Connection: close`. */
    open?: OpenRequests;
  };
  /** Guarded cutovers of blue/green services, and where their rollbacks are reported. */
  guards?: { get(service: string): Guard | undefined; onEvent(event: GuardEvent): void } | undefined;
  /** Copies of sampled requests to a route's shadow service. */
  shadow?: ShadowMirror | undefined;
}

/** What every request of one handler shares. */
interface Shared extends HandlerDeps {
  accessLog: AccessLog;
  onGuardEvent: ((event: GuardEvent) => void) | undefined;
}

/** RFC 9110 §9.2.2: the methods a proxy may repeat on its own. POST and PATCH never are. */
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * One request, top to bottom: take the generation once → plan it (normalize the target, decide
 * route, side and colour) → respond locally, or pick an endpoint → forward (streaming), copying
 * it to the route's shadow → classify → count and log. Each request is one `RequestCycle`.
 */
export function createRequestHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const shared: Shared = {
    ...deps,
    accessLog: new AccessLog(deps.logger),
    onGuardEvent: deps.guards === undefined ? undefined : (event: GuardEvent) => deps.guards?.onEvent(event),
  };
  return function handle(req, res) {
    new RequestCycle(shared, req, res as CycleResponse).run();
  };
}

const CYCLE = Symbol('ficus.requestCycle');

type CycleResponse = ServerResponse & { [CYCLE]?: RequestCycle };

/**
 * One function for every response, which finds its cycle on it: a closure per request would
 * be one more object for the young generation to carry.
 */
function onResponseClose(this: CycleResponse): void {
  this[CYCLE]?.closed();
}

/**
 * One client request, from its head to its access line. Its state lives in fields, not in
 * closures made per request: the forwarding may run at once or, for a pipelined request, when
 * its turn comes, and a retry runs it again.
 */
class RequestCycle implements ExchangeOwner, OpenLink {
  prevOpen: OpenLink | undefined;
  nextOpen: OpenLink | undefined;
  readonly #started = performance.now();
  readonly #generation: Generation;
  readonly #requestId: string;
  // Only the normalized path is ever logged: a raw absolute-form target can carry userinfo.
  #loggedPath: string;
  #routeName = '';
  #serviceName = '';
  #endpointOrigin = '';
  #upstreamMs = 0;
  #bytesOut = 0;
  #faultKind: string | undefined;
  #extraHeaders: string[] | undefined;
  #side: Side = 'stable';
  // 'blue' or 'green' for a blue/green service; the metric label is '' for any other.
  #colour: Colour | '' = '';
  #preview = false;
  // Whether a legacy service answered: the migration ledger's legacy share counts it.
  #legacy = false;
  #closed = false;
  #stopWaiting: (() => void) | undefined;
  #plan: ForwardPlan | undefined;
  // What one attempt needs and a retry repeats.
  #body: RequestBody | null = null;
  #retryable = false;
  #tap: ResponseTap | undefined;
  #headers: string[] = [];
  #path = '';
  // The attempt in progress, to abort when the client goes away, and what it is an attempt at.
  #exchange: Exchange | undefined;
  #endpoint: Endpoint | undefined;
  #service: ServiceRuntime | undefined;
  #retried = false;
  /** Pools kept open for a pipelined request waiting its turn. */
  #holds: (() => void)[] | undefined;

  constructor(
    private readonly shared: Shared,
    private readonly req: IncomingMessage,
    readonly res: CycleResponse,
  ) {
    this.#generation = shared.current();
    this.#requestId = acceptRequestId(req.headers['x-request-id']) ?? requestIds.next();
    this.#loggedPath = rawPathForLog(req.url);
  }

  run(): void {
    const { req, res, shared } = this;
    const inflight = shared.inflight;
    inflight.count++;
    inflight.open?.add(this);
    if (inflight.draining) {
      res.shouldKeepAlive = false;
      readDuringDrain(req.socket, res);
    }
    res[CYCLE] = this;
    res.on('close', onResponseClose);
    // 'close' comes once per response, except for a pipelined one still queued when the client
    // left: only such a response has no socket yet (Node assigns it when the one before ends).
    if (res.socket === null) this.#stopWaiting = onSocketClose(req.socket, () => this.closed());

    try {
      const generation = this.#generation;
      const snapshot = generation.snapshot;
      const plan = planRequest(generation, req, shared.guards);
      // A target refused before it was normalized keeps its raw origin-form path in the log.
      if (plan.path !== '') this.#loggedPath = plan.path;
      this.#extraHeaders = plan.extraHeaders;
      if (plan.kind === 'refuse') {
        this.#bytesOut = sendError(res, plan.status, this.#requestId, plan.close, plan.extraHeaders);
        discardWithin(req, snapshot.limits.bodyTimeoutMs);
        return;
      }
      this.#routeName = plan.route.name;
      if (plan.kind === 'respond') {
        this.#bytesOut = sendConfigured(res, plan.action, plan.extraHeaders);
        discardWithin(req, snapshot.limits.bodyTimeoutMs);
        return;
      }

      const hasBody = hasRequestBody(req);
      const maxBody = snapshot.limits.maxBodyBytes;
      // Refused on its head, before any service is named: ficus's own answer, which no service
      // served (the legacy share must not count it).
      if (hasBody && maxBody !== undefined && Number(req.headers['content-length'] ?? 0) > maxBody) {
        this.#bytesOut = sendError(res, 413, this.#requestId, true, plan.extraHeaders);
        return;
      }

      this.#plan = plan;
      this.#side = plan.side;
      this.#serviceName = plan.service.def.name;
      this.#legacy = plan.legacy;
      this.#colour = plan.colour;
      this.#preview = plan.preview;
      // A request pipelined behind a response still going out is forwarded in its turn, as
      // nginx and Envoy do: forwarded at once, one connection pipelining thousands of requests
      // to a slow route would hold as many upstream connections (and descriptors) at once.
      if (res.socket === null) {
        // A reload meanwhile may remove the service, and retire its pools: they stay open for
        // the request planned on them (the turn goes to the service as it runs then, if any).
        this.#holds = plan.service.endpoints.map((endpoint) => holdPool(endpoint.pool));
        waitForTurn(req.socket, res, () => this.#turnCame(hasBody));
        return;
      }
      this.#forward(plan.service, hasBody);
    } catch (error) {
      this.#bytesOut = internalError(shared.logger, this.#requestId, res, error, this.#bytesOut);
    }
  }

  #turnCame(hasBody: boolean): void {
    if (this.#closed) return;
    if (malformedBodies.has(this.req)) {
      // Its body broke the framing while it waited: refused as a malformed request is, unsent.
      this.#servedByNone();
      this.#bytesOut = sendError(this.res, 400, this.#requestId, true, this.#extraHeaders);
      this.#releaseHolds();
      return;
    }
    try {
      // A reload meanwhile may have retired the pools the plan was made with.
      this.#forward(liveRuntime(this.shared.current(), (this.#plan as ForwardPlan).service, this.shared.guards), hasBody);
    } catch (error) {
      this.#bytesOut = internalError(this.shared.logger, this.#requestId, this.res, error, this.#bytesOut);
    }
    // Handed to a pool now (or answered): a retired pool's graceful close waits for it.
    this.#releaseHolds();
  }

  /** Never forwarded: no service (nor colour) served it, and the legacy share must not count it. */
  #servedByNone(): void {
    this.#serviceName = '';
    this.#colour = '';
    this.#preview = false;
    this.#legacy = false;
  }

  #releaseHolds(): void {
    const holds = this.#holds;
    if (holds === undefined) return;
    this.#holds = undefined;
    for (const release of holds) release();
  }

  #forward(runtime: ServiceRuntime, hasBody: boolean): void {
    const { req, res, shared } = this;
    const plan = this.#plan as ForwardPlan;
    const endpoint = runtime.pick();
    if (!endpoint) {
      judge(plan, true, performance.now() - this.#started, shared.onGuardEvent);
      this.#bytesOut = sendError(res, 503, this.#requestId, false, this.#extraHeaders);
      discardWithin(req, this.#generation.snapshot.limits.bodyTimeoutMs);
      return;
    }

    const generation = this.#generation;
    const snapshot = generation.snapshot;
    const action = plan.action;
    const headers = upstreamRequestHeaders(req, { peer: plan.peer, trusted: plan.trusted, host: plan.host, requestId: this.#requestId, hostOverride: action.hostHeader, secret: snapshot.previewHeaders });
    // Services behind the facade take the same decisions as the facade did (SPEC §1.3).
    if (plan.toggles !== undefined) headers.push('x-ficus-toggles', plan.toggles);
    this.#headers = headers;
    this.#path = action.rewrite(plan.path) + plan.query;
    // Only a bodyless request can be sent twice: a body is streamed once, never kept.
    this.#body = hasBody ? new RequestBody(req, snapshot.limits.maxBodyBytes, snapshot.limits.bodyTimeoutMs) : null;
    this.#retryable = !hasBody && RETRYABLE_METHODS.has(req.method as string);
    // The copy reads the primary's answer through the tap; the primary never waits for it.
    if (action.shadow !== undefined) {
      // A request forwarded in its turn may come after a reload retired the pools of the
      // generation it was planned with: its copy goes to the shadow service as it runs now.
      const live = shared.current();
      const copyGeneration = live !== generation && live.services.has(action.shadow.service) ? live : generation;
      this.#tap = shared.shadow?.copy(copyGeneration, req, plan, action.shadow, headers, this.#path, this.#requestId);
    }
    this.#attempt(endpoint, runtime);
  }

  #attempt(endpoint: Endpoint, service: ServiceRuntime): void {
    this.#endpointOrigin = endpoint.origin;
    this.#endpoint = endpoint;
    this.#service = service;
    const limits = this.#generation.snapshot.limits;
    const exchange = new Exchange(this.res, endpoint, this.#body, this, limits.sendTimeoutMs, this.#extraHeaders, this.#tap);
    this.#exchange = exchange;
    exchange.start(this.req.method as string, endpoint.def.basePath + this.#path, this.#headers, service.def.timeouts);
  }

  /** The attempt reports, once: retried, or its outcome judged and, on a fault, the client answered. */
  exchanged(result: ExchangeResult): void {
    this.#exchange = undefined;
    const { res, shared } = this;
    const endpoint = this.#endpoint as Endpoint;
    const service = this.#service as ServiceRuntime;
    const fault = result.fault;
    const verdict = serviceFailed(result.status, fault);
    countOutcome(service, endpoint, verdict, fault, shared);
    const failed = fault !== undefined && (fault.upstream || fault.kind === 'unavailable');
    if (failed && this.#retryable && !this.#retried && !result.responseStarted && mayRetry(fault)) {
      // A reset on the only endpoint is most often a pooled connection the upstream had just
      // closed: the same endpoint on a fresh connection is the right second try. A reload may
      // have retired this runtime's pools meanwhile (its endpoints were removed or their
      // connection settings changed): the retry goes to the service as it runs now, never to a
      // closed pool.
      const live = liveRuntime(shared.current(), service, shared.guards);
      const twin = live.endpoints.find((e) => e.origin === endpoint.origin);
      const next = live.pick(twin ?? endpoint) ?? (fault.kind === 'reset' ? (twin ?? (live === service ? endpoint : undefined)) : undefined);
      if (next && !res.destroyed) {
        this.#retried = true;
        return this.#attempt(next, live);
      }
    }
    const plan = this.#plan as ForwardPlan;
    this.#tap?.end(fault === undefined);
    this.#upstreamMs = result.upstreamMs;
    this.#bytesOut = result.bytesOut;
    if (verdict !== undefined && (plan.canary !== undefined || plan.guard !== undefined)) judge(plan, verdict, performance.now() - this.#started, shared.onGuardEvent);
    this.#faultKind = fault?.kind;
    if (!fault) return;
    // Stop taking the client's body: what is still on its way is read and dropped.
    const body = this.#body;
    if (body !== null && !body.destroyed) body.destroy();
    // Never a truncated response that looks complete: once the head went out, only dropping
    // the connection tells the client the body is incomplete.
    if (result.responseStarted || fault.status === 0) {
      // Cut by ficus, not left by its client: requests queued behind are never served.
      if (fault.kind !== 'client_abort') closingConnections.add(this.req.socket);
      // A body that ends with the connection (an HTTP/1.0 client's) would look complete after a
      // plain close: the connection is reset instead (RFC 9112 §6.3 item 8).
      const socket = res.socket;
      if (result.responseStarted && result.bodyEndsWithClose && socket !== null) socket.resetAndDestroy();
      else res.destroy();
    } else {
      try {
        this.#bytesOut = sendError(res, fault.status, this.#requestId, true, this.#extraHeaders);
      } catch {
        // Never a client left waiting for an answer that cannot be written.
        res.destroy();
      }
    }
  }

  /** At the drain's deadline: a response going out whose body ends with the connection is reset, never closed as if whole. */
  cutAtDeadline(): void {
    const { res } = this;
    if (this.#exchange !== undefined && res.headersSent && !res.writableFinished && this.#exchange.bodyEndsWithClose()) res.socket?.resetAndDestroy();
  }

  /** The response closed (or, queued, its connection did): counted and logged, once. */
  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    const { req, res, shared } = this;
    const inflight = shared.inflight;
    this.#stopWaiting?.();
    this.#releaseHolds();
    inflight.count--;
    inflight.open?.delete(this);
    // An exchange still running learns first that the client left: the result it reports
    // (synchronously, once connected) gives the line what reached the client and when the
    // upstream answered.
    this.#exchange?.clientClosed();
    // A response that did not finish (aborted, reset, client gone) is counted as "000".
    const status = res.writableFinished ? res.statusCode : 0;
    // Closed unfinished with no fault of ficus's or the upstream's on record: the client left,
    // unless the drain's deadline cut it, or ficus closed the connection before its turn came.
    // Queued behind an answer that closed the connection, or a response ficus cut: never served.
    const notServed = status === 0 && res.socket === null && this.#endpointOrigin === '' && closingConnections.has(req.socket);
    if (status === 0 && (this.#faultKind === undefined || this.#faultKind === 'client_abort')) this.#faultKind = inflight.expired ? 'drain_timeout' : notServed ? 'not_served' : 'client_abort';
    if (notServed) this.#servedByNone();
    const seconds = (performance.now() - this.#started) / 1000;
    const serviceName = this.#serviceName;
    const side = serviceName ? this.#side : '';
    shared.metrics.recordRequest(this.#routeName, serviceName, this.#colour, side, status, seconds, this.#legacy);
    if (this.#generation.snapshot.accessLog) {
      shared.accessLog.write({
        requestId: this.#requestId,
        method: req.method,
        path: this.#loggedPath,
        route: this.#routeName,
        service: serviceName,
        side: serviceName ? this.#side : undefined,
        color: this.#colour || undefined,
        preview: this.#preview || undefined,
        endpoint: this.#endpointOrigin,
        status,
        durationMs: round(seconds * 1000),
        upstreamMs: round(this.#upstreamMs),
        bytesOut: this.#bytesOut,
        fault: this.#faultKind,
      });
    }
    if (inflight.count === 0) inflight.onIdle?.();
  }
}

/**
 * The runtime serving `service`'s name in `generation`: the same colour when it is still
 * blue/green, the live colour when it became blue/green, the plain service when it stopped
 * being one; `service` itself only when the name is gone.
 */
function liveRuntime(generation: Generation, service: ServiceRuntime, guards: HandlerDeps['guards']): ServiceRuntime {
  const top = generation.services.get(service.def.name);
  if (top === undefined) return service;
  if (top.colours === undefined || top.def.colours === undefined) return top;
  return top.colours[service.def.colour ?? liveColour(top.def.colours, guards?.get(service.def.name))];
}

/** A bug of ficus's own: logged, and the client answered 500, or cut off once its head went out. Returns the response's bytes sent. */
function internalError(logger: Logger, requestId: string, res: ServerResponse, error: unknown, sentSoFar: number): number {
  logger.error({ event: EVENT.internalError, requestId, err: error }, 'request handler failed');
  if (!res.headersSent) return sendError(res, 500, requestId, true);
  res.destroy();
  return sentSoFar;
}

/** Safe to send again: nothing reached the upstream, or the connection broke before any answer. */
function mayRetry(fault: Fault): boolean {
  return fault.beforeSend || fault.kind === 'reset';
}

/** The path of an origin-form target, without its query; nothing for any other form. */
function rawPathForLog(url: string | undefined): string {
  if (!url || url.charCodeAt(0) !== 47 /* / */) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
