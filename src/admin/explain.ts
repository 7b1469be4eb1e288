import type { IncomingHttpHeaders } from 'node:http';
import type { Colour, Snapshot } from '../config/snapshot.js';
import type { Generation } from '../config/store.js';
import { addHeaderLine, explain, type ExplainReport, type LiveState } from '../explain/explain.js';

export type ExplainAnswer = { ok: true; report: ExplainReport } | { ok: false; error: string };

const METHOD = /^[A-Za-z]+$/;

/**
 * `GET /explain?method=GET&url=/catalog&user=alice&header=x-beta:%201`: the same report as
 * `ficus explain`, against the snapshot serving right now and what the proxy knows beyond it:
 * its canaries' effective weights, guards' colours and endpoints out of service.
 * `header` may be repeated.
 */
export function explainQuery(snapshot: Snapshot, query: URLSearchParams, live: LiveState = {}): ExplainAnswer {
  const url = query.get('url');
  if (url === null || url === '') return { ok: false, error: 'give the request to explain: /explain?method=GET&url=/path&user=ID' };
  const method = query.get('method') || 'GET';
  if (!METHOD.test(method)) return { ok: false, error: `"${method}" is not an HTTP method` };
  const headers: IncomingHttpHeaders = {};
  for (const line of query.getAll('header')) {
    if (!addHeaderLine(headers, line)) return { ok: false, error: `header takes "name: value", not "${line}"` };
  }
  const user = query.get('user');
  return { ok: true, report: explain(snapshot, { method, url, user: user === null || user === '' ? undefined : user, headers }, undefined, live) };
}

/**
 * Why the balancer of `service` (its `colour`, for a blue/green one) passes `origin` over right
 * now; undefined when it is in service. A service's only endpoint is always used.
 */
export function endpointState(generation: Generation, service: string, colour: Colour | undefined, origin: string, now: number): 'ejected' | 'down' | undefined {
  const top = generation.services.get(service);
  const runtime = colour === undefined ? top : top?.colours?.[colour];
  if (runtime === undefined || runtime.endpoints.length < 2) return undefined;
  const endpoint = runtime.endpoints.find((e) => e.origin === origin);
  if (endpoint === undefined || runtime.inService(endpoint, now)) return undefined;
  return endpoint.ejectedUntil > now ? 'ejected' : 'down';
}
