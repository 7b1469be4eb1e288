import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Colour, ColoursDef } from '../config/snapshot.js';
import type { Generation } from '../config/store.js';
import { EVENT, type Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { Audience } from '../routing/audience.js';
import { decide } from '../routing/decide.js';
import { identify } from '../routing/identity.js';
import { normalizeTarget } from '../routing/normalize.js';
import { hostName, RequestView } from '../routing/request-view.js';
import { chooseColour } from '../upstream/bluegreen.js';
import type { Guard, GuardDecision, GuardEvent } from '../rollout/guard.js';
import type { Endpoint } from '../upstream/endpoint.js';
import type { ServiceRuntime } from '../upstream/service.js';
import type { Fault } from './errors.js';
import { Exchange, type ExchangeResult } from './forward.js';
import { acceptRequestId, upstreamRequestHeaders } from './headers.js';
import { sendConfigured, sendError } from './local-response.js';
import { onSocketClose } from './socket-close.js';
import { RequestBody } from './request-body.js';

export interface HandlerDeps {
  current: () => Generation;
  metrics: Metrics;
  logger: Logger;
  /** Requests being served; drain waits for it to reach zero. */
  inflight: { count: number; draining: boolean; onIdle?: (() => void) | undefined };
  /** Guarded cutovers of blue/green services, and where their rollbacks are reported. */
  guards?: { get(service: string): Guard | undefined; onEvent(event: GuardEvent): void } | undefined;
}

/** RFC 9110 §9.2.2: the methods a proxy may repeat on its own. POST and PATCH never are. */
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** CONNECT is answered by the edge server itself; TRACE would echo credentials back. */
const REFUSED_METHODS = new Set(['CONNECT', 'TRACE']);

/**
 * One request, top to bottom: take the generation once → normalize the target → decide route
 * and side → respond locally, or choose the colour of a blue/green service and pick an endpoint
 * → forward (streaming) → classify → count and log.
 */
export function createRequestHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, logger, inflight } = deps;
  const report = (decision: GuardDecision) => {
    if (decision.kind !== 'none') deps.guards?.onEvent(decision);
  };

  return function handle(req, res) {
    const generation = deps.current();
    const { snapshot } = generation;
    const started = performance.now();
    const requestId = acceptRequestId(req.headers['x-request-id']) ?? randomUUID();
    inflight.count++;
    if (inflight.draining) res.shouldKeepAlive = false;

    // Only the normalized path is ever logged: a raw absolute-form target can carry userinfo.
    let loggedPath = rawPathForLog(req.url);
    let routeName = '';
    let serviceName = '';
    let endpointOrigin = '';
    let upstreamMs = 0;
    let bytesOut = 0;
    let faultKind: string | undefined;
    let extraHeaders: string[] | undefined;
    let side = 'stable';
    // 'blue' or 'green' for a blue/green service; the metric label is '' for any other.
    let colour = '';
    let preview = false;
    // Whether a legacy service answered: the migration ledger's legacy share counts it.
    let legacy = false;
    // The upstream exchange in progress, to abort when the client goes away.
    let abortUpstream: (() => void) | undefined;
    let closed = false;
    const onResponseClose = (): void => {
      if (closed) return;
      closed = true;
      stopWaiting();
      inflight.count--;
      // A response that did not finish (aborted, reset, client gone) is counted as "000".
      const status = res.writableFinished ? res.statusCode : 0;
      const seconds = (performance.now() - started) / 1000;
      metrics.recordRequest(routeName, serviceName, colour, serviceName ? side : '', status, seconds, legacy);
      if (snapshot.accessLog) {
        logger.info({
          event: EVENT.access,
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
      abortUpstream?.();
    };
    // 'close' comes once per response, except for a pipelined one still queued when the client left.
    res.on('close', onResponseClose);
    const stopWaiting = onSocketClose(req.socket, onResponseClose);

    try {
      const method = req.method ?? 'GET';
      if (REFUSED_METHODS.has(method)) {
        bytesOut = sendError(res, 405, requestId);
        return;
      }
      if (req.rawHeaders.length / 2 > snapshot.limits.maxHeaderCount) {
        bytesOut = sendError(res, 431, requestId, true);
        return;
      }

      const target = normalizeTarget(req.url ?? '');
      if (!target.ok) {
        bytesOut = sendError(res, 400, requestId, true);
        return;
      }
      loggedPath = target.path;
      const host = target.host ?? req.headers.host ?? '';
      const view = new RequestView(method, target.path, target.query, hostName(host), req.headers);
      const peer = req.socket.remoteAddress ?? '';
      const trusted = snapshot.trustsPeer(peer);
      if (snapshot.usesCaller) {
        const secure = trusted && req.headers['x-forwarded-proto'] === 'https';
        const caller = identify(snapshot.identity, req.headers, secure, randomUUID);
        view.audience = new Audience(snapshot.audience, caller, req.headers);
        if (caller.setCookie !== undefined) extraHeaders = ['set-cookie', caller.setCookie];
      }

      // The canaries' effective weights: 0 for an ejected one, whatever the file says.
      const decision = decide(snapshot, view, generation.canaries);
      const route = decision.route;
      if (!route) {
        bytesOut = sendError(res, 404, requestId, false, extraHeaders);
        return;
      }
      routeName = route.name;
      const action = route.action;
      if (action.kind === 'respond') {
        bytesOut = sendConfigured(res, action, extraHeaders);
        return;
      }

      side = decision.side;
      // Set only on canary routes: every other route skips the windows at no cost.
      const canary = generation.canaries[route.index];
      let service = generation.services.get(decision.service as string) as ServiceRuntime;
      serviceName = service.def.name;
      legacy = service.def.legacy;
      const colours = service.colours;
      let guard: Guard | undefined;
      if (colours !== undefined) {
        const def = service.def.colours as ColoursDef;
        guard = deps.guards?.get(serviceName);
        // After a rollback the guard names the previous colour until the file changes again.
        const chosen = chooseColour(def, req.headers, guard ? guard.effectiveActive(def.active) : def.active);
        colour = chosen.colour;
        preview = chosen.preview;
        service = colours[chosen.colour];
      }
      const hasBody = hasRequestBody(req);
      const maxBody = snapshot.limits.maxBodyBytes;
      if (hasBody && maxBody !== undefined && Number(req.headers['content-length'] ?? 0) > maxBody) {
        bytesOut = sendError(res, 413, requestId, true, extraHeaders);
        return;
      }

      const endpoint = service.pick();
      if (!endpoint) {
        const ms = performance.now() - started;
        canary?.record(decision.side, true, ms);
        if (guard !== undefined) report(guard.record(colour as Colour, true, ms));
        bytesOut = sendError(res, 503, requestId, false, extraHeaders);
        return;
      }

      const headers = upstreamRequestHeaders(req, { peer, trusted, host, requestId, hostOverride: action.hostHeader, secret: snapshot.previewHeaders });
      // Services behind the facade take the same decisions as the facade did (SPEC §1.3).
      const toggles = view.audience?.togglesHeader();
      if (toggles !== undefined) headers.push('x-ficus-toggles', toggles);
      const path = action.rewrite(target.path) + target.query;
      // Only a bodyless request can be sent twice: a body is streamed once, never kept.
      const body = hasBody ? new RequestBody(req, maxBody) : null;
      const retryable = body === null && RETRYABLE_METHODS.has(method);

      const attempt = (endpoint: Endpoint, retried: boolean): void => {
        endpointOrigin = endpoint.origin;
        const exchange = new Exchange(res, endpoint, body, onDone, extraHeaders);
        function onDone(result: ExchangeResult): void {
          abortUpstream = undefined;
          const failed = settle(service, endpoint, result);
          if (failed && retryable && !retried && !result.responseStarted && mayRetry(result.fault)) {
            // A reset on the only endpoint is most often a pooled connection the upstream had
            // just closed: the same endpoint on a fresh connection is the right second try.
            const next = service.pick(endpoint) ?? (result.fault?.kind === 'reset' ? endpoint : undefined);
            if (next && !res.destroyed) return attempt(next, true);
          }
          upstreamMs = result.upstreamMs;
          bytesOut = result.bytesOut;
          const fault = result.fault;
          const verdict = serviceFailed(result);
          if (verdict !== undefined && (canary !== undefined || guard !== undefined)) {
            const ms = performance.now() - started;
            canary?.record(decision.side, verdict, ms);
            if (guard !== undefined) report(guard.record(colour as Colour, verdict, ms));
          }
          faultKind = fault?.kind;
          if (!fault) return;
          // Stop taking the client's body: what is still on its way is read and dropped.
          if (body !== null && !body.destroyed) body.destroy();
          // Never a truncated response that looks complete: once the head went out, only
          // dropping the connection tells the client the body is incomplete.
          if (result.responseStarted || fault.status === 0) res.destroy();
          else bytesOut = sendError(res, fault.status, requestId, true, extraHeaders);
        }
        abortUpstream = () => exchange.clientClosed();
        exchange.start(method, endpoint.def.basePath + path, headers, service.def.timeouts);
      };
      attempt(endpoint, false);
    } catch (error) {
      logger.error({ event: EVENT.internalError, requestId, err: error }, 'request handler failed');
      if (res.headersSent) res.destroy();
      else bytesOut = sendError(res, 500, requestId, true);
    }
  };

  /** Feeds the outcome to outlier detection and error counts; true when the attempt failed. */
  function settle(service: ServiceRuntime, endpoint: Endpoint, result: ExchangeResult): boolean {
    const fault = result.fault;
    const failed = serviceFailed(result);
    if (failed === true) service.outlier.failure(endpoint);
    else if (failed === false) service.outlier.success(endpoint);
    if (fault === undefined) return false;
    if (fault.upstream) {
      metrics.upstreamErrors.labels(service.def.name, fault.kind).inc();
      logger.debug({ event: EVENT.upstreamError, service: service.def.name, endpoint: endpoint.origin, kind: fault.kind, message: fault.message });
      return true;
    }
    return fault.kind === 'unavailable';
  }
}

/**
 * What one exchange says of the service (SPEC §1.4): failed on a 5xx or an upstream fault
 * (connect, reset, timeout, protocol), healthy otherwise; undefined when it says nothing — a
 * client's abort or error, or a pool closed under a reload. Outlier detection, the canary
 * windows and the cutover guard all count by this one rule.
 */
function serviceFailed(result: ExchangeResult): boolean | undefined {
  const fault = result.fault;
  if (fault === undefined) return result.status >= 500;
  return fault.upstream ? true : undefined;
}

/** Safe to send again: nothing reached the upstream, or the connection broke before any answer. */
function mayRetry(fault: Fault | undefined): boolean {
  return fault !== undefined && (fault.beforeSend || fault.kind === 'reset');
}

function hasRequestBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
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
