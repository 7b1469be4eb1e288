import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Generation } from '../config/store.js';
import { EVENT, type Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { normalizeTarget } from '../routing/normalize.js';
import { hostName, RequestView } from '../routing/request-view.js';
import { firstMatch } from '../routing/route.js';
import type { Endpoint } from '../upstream/endpoint.js';
import type { ServiceRuntime } from '../upstream/service.js';
import type { Fault } from './errors.js';
import { Exchange, type ExchangeResult } from './forward.js';
import { acceptRequestId, upstreamRequestHeaders } from './headers.js';
import { sendConfigured, sendError } from './local-response.js';

export interface HandlerDeps {
  current: () => Generation;
  metrics: Metrics;
  logger: Logger;
  /** Requests being served; drain waits for it to reach zero. */
  inflight: { count: number; draining: boolean; onIdle?: (() => void) | undefined };
}

const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
const REFUSED_METHODS = new Set(['CONNECT', 'TRACE']);

/**
 * One request, top to bottom: take the generation once → normalize the target → match a route
 * → respond locally or pick an endpoint → forward (streaming) → classify → count and log.
 */
export function createRequestHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, logger, inflight } = deps;

  return function handle(req, res) {
    const generation = deps.current();
    const { snapshot } = generation;
    const started = performance.now();
    const requestId = acceptRequestId(req.headers['x-request-id']) ?? randomUUID();
    inflight.count++;
    if (inflight.draining) res.shouldKeepAlive = false;

    let routeName = '';
    let serviceName = '';
    let endpointOrigin = '';
    let upstreamMs = 0;
    let bytesOut = 0;
    let faultKind: string | undefined;
    res.once('close', () => {
      inflight.count--;
      const status = res.writableFinished ? res.statusCode : 0;
      const seconds = (performance.now() - started) / 1000;
      metrics.recordRequest(routeName, serviceName, '', routeName && serviceName ? 'stable' : '', status, seconds);
      if (snapshot.accessLog) {
        logger.info({
          event: EVENT.access,
          requestId,
          method: req.method,
          path: pathOnly(req.url),
          route: routeName,
          service: serviceName,
          endpoint: endpointOrigin,
          status,
          durationMs: round(seconds * 1000),
          upstreamMs: round(upstreamMs),
          bytesOut,
          fault: faultKind,
        });
      }
      if (inflight.count === 0) inflight.onIdle?.();
    });

    const method = req.method ?? 'GET';
    if (REFUSED_METHODS.has(method)) return sendError(res, 405, requestId);
    if (req.rawHeaders.length / 2 > snapshot.limits.maxHeaderCount) return sendError(res, 431, requestId, true);

    const target = normalizeTarget(req.url ?? '');
    if (!target.ok) return sendError(res, 400, requestId, true);
    const hostHeader = target.host ?? req.headers.host ?? '';
    const view = new RequestView(method, target.path, target.query, hostName(hostHeader), req.headers);

    const route = firstMatch(snapshot.routes, view);
    if (!route) return sendError(res, 404, requestId);
    routeName = route.name;
    const action = route.action;
    if (action.kind === 'respond') return sendConfigured(res, action.status, action.body, action.headers);

    serviceName = action.service;
    const service = generation.services.get(action.service) as ServiceRuntime;
    const hasBody = hasRequestBody(req);
    const maxBody = snapshot.limits.maxBodyBytes;
    if (hasBody && maxBody !== undefined && Number(req.headers['content-length'] ?? 0) > maxBody) {
      return sendError(res, 413, requestId, true);
    }

    const headers = upstreamRequestHeaders(req, {
      peer: req.socket.remoteAddress ?? '',
      trusted: snapshot.trustsPeer(req.socket.remoteAddress),
      host: hostHeader,
      requestId,
      hostOverride: action.hostHeader,
    });
    const forwardedPath = action.rewrite(target.path);
    const retryable = !hasBody && RETRYABLE_METHODS.has(method);

    const attempt = (endpoint: Endpoint, retried: boolean): void => {
      endpointOrigin = endpoint.origin;
      const exchange = new Exchange(
        req,
        res,
        { endpoint, method, path: endpoint.def.basePath + forwardedPath + target.query, headers, hasBody, timeouts: service.def.timeouts },
        (result) => {
          res.off('close', onClose);
          if (settle(service, endpoint, result) && !retried && retryable && !result.responseStarted && mayRetry(result.fault)) {
            const next = service.pick(endpoint) ?? (result.fault?.kind === 'reset' ? endpoint : undefined);
            if (next) return attempt(next, true);
          }
          upstreamMs = result.upstreamMs;
          bytesOut = result.bytesOut;
          faultKind = result.fault?.kind;
          if (!result.fault) return;
          if (result.responseStarted || result.fault.status === 0) res.destroy();
          else sendError(res, result.fault.status, requestId, true);
        },
      );
      const onClose = () => exchange.clientClosed();
      res.once('close', onClose);
      exchange.start();
    };

    const endpoint = service.pick();
    if (!endpoint) return sendError(res, 503, requestId);
    attempt(endpoint, false);
  };

  /** Feeds the outcome to outlier detection and error counts; true when the attempt failed. */
  function settle(service: ServiceRuntime, endpoint: Endpoint, result: ExchangeResult): boolean {
    const fault = result.fault;
    if (fault?.upstream) {
      metrics.upstreamErrors.labels(service.def.name, fault.kind).inc();
      service.outlier.failure(endpoint);
      logger.debug({ event: EVENT.upstreamError, service: service.def.name, endpoint: endpoint.origin, kind: fault.kind, message: fault.message });
      return true;
    }
    if (fault) return fault.kind === 'unavailable';
    if (result.status >= 500) service.outlier.failure(endpoint);
    else service.outlier.success(endpoint);
    return false;
  }
}

function mayRetry(fault: Fault | undefined): boolean {
  return fault !== undefined && (fault.beforeSend || fault.kind === 'reset') && !fault.kind.startsWith('client');
}

function hasRequestBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

function pathOnly(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
