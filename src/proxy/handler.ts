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
import type { Fault } from './errors.js';
import { Exchange, type ExchangeResult } from './forward.js';
import { readDuringDrain, waitForTurn } from './connection-turns.js';
import { countOutcome, judge, serviceFailed } from './outcome.js';
import { acceptRequestId, upstreamRequestHeaders } from './headers.js';
import { sendConfigured, sendError } from './local-response.js';
import { planRequest } from './plan.js';
import { requestIds } from './request-id.js';
import { hasRequestBody, RequestBody } from './request-body.js';
import { onSocketClose } from './socket-close.js';

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
    /** Responses not yet finished, so that a drain can make the last one on each connection say `Connection: close`. */
    open?: Set<ServerResponse>;
  };
  /** Guarded cutovers of blue/green services, and where their rollbacks are reported. */
  guards?: { get(service: string): Guard | undefined; onEvent(event: GuardEvent): void } | undefined;
  /** Copies of sampled requests to a route's shadow service. */
  shadow?: ShadowMirror | undefined;
}

/** RFC 9110 §9.2.2: the methods a proxy may repeat on its own. POST and PATCH never are. */
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * One request, top to bottom: take the generation once → plan it (normalize the target, decide
 * route, side and colour) → respond locally, or pick an endpoint → forward (streaming), copying
 * it to the route's shadow → classify → count and log.
 */
export function createRequestHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, logger, inflight } = deps;
  const accessLog = new AccessLog(logger);
  const onGuardEvent = deps.guards === undefined ? undefined : (event: GuardEvent) => deps.guards?.onEvent(event);

  return function handle(req, res) {
    const generation = deps.current();
    const { snapshot } = generation;
    const started = performance.now();
    const requestId = acceptRequestId(req.headers['x-request-id']) ?? requestIds.next();
    inflight.count++;
    inflight.open?.add(res);
    if (inflight.draining) {
      res.shouldKeepAlive = false;
      readDuringDrain(req.socket, res);
    }

    // Only the normalized path is ever logged: a raw absolute-form target can carry userinfo.
    let loggedPath = rawPathForLog(req.url);
    let routeName = '';
    let serviceName = '';
    let endpointOrigin = '';
    let upstreamMs = 0;
    let bytesOut = 0;
    let faultKind: string | undefined;
    let extraHeaders: string[] | undefined;
    let side: Side = 'stable';
    // 'blue' or 'green' for a blue/green service; the metric label is '' for any other.
    let colour: Colour | '' = '';
    let preview = false;
    // Whether a legacy service answered: the migration ledger's legacy share counts it.
    let legacy = false;
    // The upstream exchange in progress, to abort when the client goes away.
    let abortUpstream: (() => void) | undefined;
    let closed = false;
    const onResponseClose = (): void => {
      if (closed) return;
      closed = true;
      stopWaiting?.();
      inflight.count--;
      inflight.open?.delete(res);
      // An exchange still running learns first that the client left: the result it reports
      // (synchronously, once connected) gives the line what reached the client and when the
      // upstream answered.
      abortUpstream?.();
      // A response that did not finish (aborted, reset, client gone) is counted as "000".
      const status = res.writableFinished ? res.statusCode : 0;
      // Closed unfinished with no fault of ficus's or the upstream's on record: the client left,
      // unless the drain's deadline cut it.
      if (status === 0 && (faultKind === undefined || faultKind === 'client_abort')) faultKind = inflight.expired ? 'drain_timeout' : 'client_abort';
      const seconds = (performance.now() - started) / 1000;
      metrics.recordRequest(routeName, serviceName, colour, serviceName ? side : '', status, seconds, legacy);
      if (snapshot.accessLog) {
        accessLog.write({
          requestId,
          method: req.method,
          path: loggedPath,
          route: routeName,
          service: serviceName,
          side: serviceName ? side : undefined,
          color: colour || undefined,
          preview: preview || undefined,
          endpoint: endpointOrigin,
          status,
          durationMs: round(seconds * 1000),
          upstreamMs: round(upstreamMs),
          bytesOut,
          fault: faultKind,
        });
      }
      if (inflight.count === 0) inflight.onIdle?.();
    };
    // 'close' comes once per response, except for a pipelined one still queued when the client
    // left: only such a response has no socket yet (Node assigns it when the one before ends).
    res.on('close', onResponseClose);
    const stopWaiting = res.socket === null ? onSocketClose(req.socket, onResponseClose) : undefined;

    try {
      const plan = planRequest(generation, req, deps.guards);
      // A target refused before it was normalized keeps its raw origin-form path in the log.
      if (plan.path !== '') loggedPath = plan.path;
      extraHeaders = plan.extraHeaders;
      if (plan.kind === 'refuse') {
        bytesOut = sendError(res, plan.status, requestId, plan.close, extraHeaders);
        return;
      }
      routeName = plan.route.name;
      if (plan.kind === 'respond') {
        bytesOut = sendConfigured(res, plan.action, extraHeaders);
        return;
      }

      const hasBody = hasRequestBody(req);
      const maxBody = snapshot.limits.maxBodyBytes;
      // Refused on its head, before any service is named: ficus's own answer, which no service
      // served (the legacy share must not count it).
      if (hasBody && maxBody !== undefined && Number(req.headers['content-length'] ?? 0) > maxBody) {
        bytesOut = sendError(res, 413, requestId, true, extraHeaders);
        return;
      }

      side = plan.side;
      // Narrowed for the closures below.
      const forward = plan;
      const { service } = forward;
      serviceName = service.def.name;
      legacy = plan.legacy;
      colour = plan.colour;
      preview = plan.preview;
      const method = req.method as string;

      const forwardNow = (runtime: ServiceRuntime): void => {
        const endpoint = runtime.pick();
        if (!endpoint) {
          judge(forward, true, performance.now() - started, onGuardEvent);
          bytesOut = sendError(res, 503, requestId, false, extraHeaders);
          return;
        }

        const action = plan.action;
        const headers = upstreamRequestHeaders(req, { peer: plan.peer, trusted: plan.trusted, host: plan.host, requestId, hostOverride: action.hostHeader, secret: snapshot.previewHeaders });
        // Services behind the facade take the same decisions as the facade did (SPEC §1.3).
        if (plan.toggles !== undefined) headers.push('x-ficus-toggles', plan.toggles);
        const path = action.rewrite(plan.path) + plan.query;
        // Only a bodyless request can be sent twice: a body is streamed once, never kept.
        const body = hasBody ? new RequestBody(req, maxBody, snapshot.limits.bodyTimeoutMs) : null;
        const retryable = body === null && RETRYABLE_METHODS.has(method);
        // The copy reads the primary's answer through the tap; the primary never waits for it.
        const tap = action.shadow === undefined ? undefined : deps.shadow?.copy(generation, req, plan, action.shadow, headers, path, requestId);

        const attempt = (endpoint: Endpoint, retried: boolean, service: ServiceRuntime): void => {
          endpointOrigin = endpoint.origin;
          const exchange = new Exchange(res, endpoint, body, onDone, snapshot.limits.sendTimeoutMs, extraHeaders, tap);
          function onDone(result: ExchangeResult): void {
            abortUpstream = undefined;
            const failed = settle(service, endpoint, result);
            if (failed && retryable && !retried && !result.responseStarted && mayRetry(result.fault)) {
              // A reset on the only endpoint is most often a pooled connection the upstream had
              // just closed: the same endpoint on a fresh connection is the right second try.
              // A reload may have retired this runtime's pools meanwhile (its endpoints were
              // removed or their connection settings changed): the retry goes to the service as it
              // runs now, never to a closed pool.
              const live = liveRuntime(deps.current(), service, deps.guards);
              const twin = live.endpoints.find((e) => e.origin === endpoint.origin);
              const next = live.pick(twin ?? endpoint) ?? (result.fault?.kind === 'reset' ? (twin ?? (live === service ? endpoint : undefined)) : undefined);
              if (next && !res.destroyed) return attempt(next, true, live);
            }
            tap?.end(result.fault === undefined);
            upstreamMs = result.upstreamMs;
            bytesOut = result.bytesOut;
            const fault = result.fault;
            const verdict = serviceFailed(result.status, fault);
            if (verdict !== undefined && (forward.canary !== undefined || forward.guard !== undefined)) judge(forward, verdict, performance.now() - started, onGuardEvent);
            faultKind = fault?.kind;
            if (!fault) return;
            // Stop taking the client's body: what is still on its way is read and dropped.
            if (body !== null && !body.destroyed) body.destroy();
            // Never a truncated response that looks complete: once the head went out, only
            // dropping the connection tells the client the body is incomplete.
            if (result.responseStarted || fault.status === 0) res.destroy();
            else {
              try {
                bytesOut = sendError(res, fault.status, requestId, true, extraHeaders);
              } catch {
                // Never a client left waiting for an answer that cannot be written.
                res.destroy();
              }
            }
          }
          abortUpstream = () => exchange.clientClosed();
          exchange.start(method, endpoint.def.basePath + path, headers, service.def.timeouts);
        };
        attempt(endpoint, false, runtime);
      };
      // A request pipelined behind a response still going out is forwarded in its turn, as
      // nginx and Envoy do: forwarded at once, one connection pipelining thousands of requests
      // to a slow route would hold as many upstream connections (and descriptors) at once.
      if (res.socket === null) {
        waitForTurn(req.socket, res, () => {
          if (closed) return;
          try {
            // A reload meanwhile may have retired the pools the plan was made with.
            forwardNow(liveRuntime(deps.current(), service, deps.guards));
          } catch (error) {
            bytesOut = internalError(logger, requestId, res, error, bytesOut);
          }
        });
        return;
      }
      forwardNow(service);
    } catch (error) {
      bytesOut = internalError(logger, requestId, res, error, bytesOut);
    }
  };

  /** Feeds the outcome to outlier detection and error counts; true when the attempt failed. */
  function settle(service: ServiceRuntime, endpoint: Endpoint, result: ExchangeResult): boolean {
    const fault = result.fault;
    countOutcome(service, endpoint, serviceFailed(result.status, fault), fault, { metrics, logger });
    return fault !== undefined && (fault.upstream || fault.kind === 'unavailable');
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

/**
 * A bug of ficus's own: logged, and the client answered 500, or cut off once its head went out.
 * Module-level rather than a closure of the handler: it would be allocated for every request.
 * Returns the response's bytes sent.
 */
function internalError(logger: Logger, requestId: string, res: ServerResponse, error: unknown, sentSoFar: number): number {
  logger.error({ event: EVENT.internalError, requestId, err: error }, 'request handler failed');
  if (!res.headersSent) return sendError(res, 500, requestId, true);
  res.destroy();
  return sentSoFar;
}

/** Safe to send again: nothing reached the upstream, or the connection broke before any answer. */
function mayRetry(fault: Fault | undefined): boolean {
  return fault !== undefined && (fault.beforeSend || fault.kind === 'reset');
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
