/**
 * Every way a proxied exchange can fail, with where it failed and what the client gets.
 * Classify first, then count: only `upstream` faults count against an endpoint (a client's
 * abort never does), and only faults before anything was sent may be retried.
 */
export type FaultKind = 'connect' | 'reset' | 'timeout' | 'protocol' | 'unavailable' | 'client_abort' | 'client_error';

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

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'ECONNABORTED']);

export function classify(error: unknown, clientGone: boolean): Fault {
  const err = error as { code?: string; message?: string } | undefined;
  const code = err?.code ?? '';
  const message = err?.message ?? String(error);
  if (clientGone || code === 'UND_ERR_ABORTED') {
    return { kind: 'client_abort', status: 0, upstream: false, beforeSend: false, message: 'client went away' };
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    return { kind: 'client_error', status: 400, upstream: false, beforeSend: false, message: 'request body does not match its Content-Length' };
  }
  if (CONNECT_CODES.has(code)) return { kind: 'connect', status: 502, upstream: true, beforeSend: true, message };
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return { kind: 'timeout', status: 504, upstream: true, beforeSend: true, message };
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return { kind: 'timeout', status: 504, upstream: true, beforeSend: false, message };
  }
  if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
    return { kind: 'unavailable', status: 502, upstream: false, beforeSend: true, message };
  }
  if (RESET_CODES.has(code)) return { kind: 'reset', status: 502, upstream: true, beforeSend: false, message };
  return { kind: 'protocol', status: 502, upstream: true, beforeSend: false, message };
}

export const STATUS_TEXT: Record<number, string> = {
  400: 'bad request',
  404: 'no route',
  405: 'method not allowed',
  413: 'request body too large',
  431: 'request header fields too large',
  502: 'bad gateway',
  503: 'service unavailable',
  504: 'gateway timeout',
};
