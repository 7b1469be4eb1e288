import type { ServerResponse } from 'node:http';
import type { RouteAction } from '../config/snapshot.js';
import { STATUS_TEXT } from './errors.js';

/**
 * Connections ficus closes: an answer said `Connection: close`, or a fault cut the response. A
 * request Node still parses on them afterwards (pipelined behind, or behind a body it read to
 * the end) is never served, as nginx never reads past such an answer (see server.ts), and one
 * already waiting its turn is logged `not_served` (handler.ts).
 */
export const closingConnections = new WeakSet<object>();

/**
 * Requests pipelined behind a response still going out whose own body turned out malformed
 * (server.ts, 'clientError'): their turn brings a 400, never a forward of a body that can never end.
 */
export const malformedBodies = new WeakSet<object>();

/**
 * A response ficus writes itself. Bodies are JSON naming no internals: the client learns the
 * status and the request id to quote, never an upstream address or an error message.
 * Returns the body bytes sent, for the access log.
 */
export function sendError(res: ServerResponse, status: number, requestId: string, close = false, extraHeaders?: readonly string[]): number {
  if (res.headersSent || res.destroyed) return 0;
  const { fields, body } = errorAnswer(status, requestId);
  if (close) {
    fields.push('connection', 'close');
    closingConnections.add(res.req.socket);
  }
  if (extraHeaders !== undefined) fields.push(...extraHeaders);
  res.writeHead(status, fields);
  res.end(body);
  return bodyBytes(res, status, Buffer.byteLength(body));
}

/** The head fields and JSON body of ficus's own error answer; raw-response.ts writes the same to a bare socket. */
export function errorAnswer(status: number, requestId: string): { fields: string[]; body: string } {
  const body = `{"error":"${STATUS_TEXT[status] ?? 'error'}","status":${status},"requestId":${JSON.stringify(requestId)}}`;
  const fields = [
    'content-type', 'application/json',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
    'x-request-id', requestId,
  ];
  return { fields, body };
}

type Respond = Extract<RouteAction, { kind: 'respond' }>;

/** A `respond` route's head and body, built once per compiled route rather than per request. */
const prepared = new WeakMap<Respond, { readonly fields: readonly string[]; readonly body: Buffer }>();

/** Writes a `respond` route's answer; returns the body bytes sent (none for HEAD, 204, 304). */
export function sendConfigured(res: ServerResponse, action: Respond, extraHeaders?: readonly string[]): number {
  const ready = configuredAnswer(action);
  res.writeHead(action.status, extraHeaders === undefined ? (ready.fields as string[]) : [...ready.fields, ...extraHeaders]);
  // Node leaves the body out for HEAD and for 204/304 on its own.
  res.end(ready.body);
  return bodyBytes(res, action.status, ready.body.length);
}

/** A `respond` route's head fields and body, built on first use and kept with the compiled route. */
export function configuredAnswer(action: Respond): { readonly fields: readonly string[]; readonly body: Buffer } {
  let ready = prepared.get(action);
  if (!ready) {
    const body = Buffer.from(action.body);
    const merged: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
    for (const [name, value] of Object.entries(action.headers)) merged[name.toLowerCase()] = value;
    // RFC 9110 §8.6: no Content-Length on 204 or 304.
    if (action.status !== 204 && action.status !== 304) merged['content-length'] = String(body.length);
    ready = { fields: Object.entries(merged).flat(), body };
    prepared.set(action, ready);
  }
  return ready;
}

function bodyBytes(res: ServerResponse, status: number, length: number): number {
  return status === 204 || status === 304 || res.req.method === 'HEAD' ? 0 : length;
}
