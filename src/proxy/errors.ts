import { CONNECT_ERROR } from '../upstream/pools.js';
import type { BodyFault } from './request-body.js';

/**
 * Every way a proxied exchange can fail, with where it failed and what the client gets.
 * Classify first, then count: only `upstream` faults count against an endpoint (a client's
 * abort never does), and only faults before anything was sent may be retried.
 */
export type FaultKind = 'connect' | 'reset' | 'timeout' | 'protocol' | 'unavailable' | 'client_abort' | 'client_error' | 'too_large';

export interface Fault {
  readonly kind: FaultKind;
  /** Status for the client when no response has started; 0 when none can be sent. */
  readonly status: number;
  /** True when the upstream is to blame (feeds outlier detection and upstream_errors_total). */
  readonly upstream: boolean;
  /** True when the request never reached the upstream application, so a retry is safe. */
  readonly beforeSend: boolean;
  readonly message: string;
}

export const CLIENT_ABORT: Fault = Object.freeze({ kind: 'client_abort', status: 0, upstream: false, beforeSend: false, message: 'client went away' });
const TOO_LARGE: Fault = Object.freeze({ kind: 'too_large', status: 413, upstream: false, beforeSend: false, message: 'request body over limits.maxBodyBytes' });
const STALLED: Fault = Object.freeze({ kind: 'client_error', status: 408, upstream: false, beforeSend: false, message: 'request body stalled past limits.bodyTimeout' });
const LENGTH_MISMATCH: Fault = Object.freeze({ kind: 'client_error', status: 400, upstream: false, beforeSend: false, message: 'request body does not match its Content-Length' });

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'ECONNABORTED']);

/**
 * `clientFault` is what the proxy itself saw of the client (it went away, or sent too much);
 * it wins over the error undici reports, because undici only sees the consequence.
 */
export function classify(error: unknown, clientFault: BodyFault | undefined): Fault {
  if (clientFault === 'client_abort') return CLIENT_ABORT;
  if (clientFault === 'too_large') return TOO_LARGE;
  if (clientFault === 'stalled') return STALLED;
  const err = error as { code?: unknown; message?: unknown } | null | undefined;
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = typeof err?.message === 'string' ? err.message : String(error);
  if (code === 'UND_ERR_ABORTED') return CLIENT_ABORT;
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return LENGTH_MISMATCH;
  // undici refusing the request it was handed: a header Node let through that undici will not
  // send. Neither the endpoint's fault nor worth a retry.
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') {
    return { kind: 'client_error', status: 400, upstream: false, beforeSend: false, message };
  }
  // A TLS handshake or certificate failure happens before anything is sent: a connect error,
  // retried on another endpoint as a refused connection is (nginx: proxy_next_upstream error).
  if (code !== 'UND_ERR_CONNECT_TIMEOUT' && (CONNECT_CODES.has(code) || (err as { [CONNECT_ERROR]?: true } | null)?.[CONNECT_ERROR] === true)) return { kind: 'connect', status: 502, upstream: true, beforeSend: true, message };
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return { kind: 'timeout', status: 504, upstream: true, beforeSend: true, message };
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return { kind: 'timeout', status: 504, upstream: true, beforeSend: false, message };
  }
  // The pool was closed under the request (its service was reloaded away): nothing was sent.
  if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
    return { kind: 'unavailable', status: 502, upstream: false, beforeSend: true, message };
  }
  // The upstream answered, but with what undici will not read (an unsolicited `100 Continue`,
  // an unasked-for upgrade): it has the request, so this is no reset to retry on.
  if (code === 'UND_ERR_SOCKET' && (message === 'bad response' || message === 'bad upgrade')) {
    return { kind: 'protocol', status: 502, upstream: true, beforeSend: false, message };
  }
  if (RESET_CODES.has(code)) return { kind: 'reset', status: 502, upstream: true, beforeSend: false, message };
  return { kind: 'protocol', status: 502, upstream: true, beforeSend: false, message };
}

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'bad request',
  404: 'no route',
  405: 'method not allowed',
  408: 'request timeout',
  413: 'request body too large',
  431: 'request header fields too large',
  500: 'internal error',
  502: 'bad gateway',
  503: 'service unavailable',
  504: 'gateway timeout',
};
