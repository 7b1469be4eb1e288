import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Timeouts } from '../config/snapshot.js';
import type { Endpoint } from '../upstream/endpoint.js';
import { upstreamResetting } from '../upstream/reset-watch.js';
import { classify, type Fault } from './errors.js';
import { clientResponseHeaders, dropContentLength } from './headers.js';
import type { RequestBody } from './request-body.js';

export interface ExchangeResult {
  /** Status sent to the client, or 0 when the exchange ended without a complete response. */
  status: number;
  fault: Fault | undefined;
  /** True once response headers went to the client: a fault after that aborts the connection. */
  responseStarted: boolean;
  bytesOut: number;
  /** Milliseconds from dispatch to the upstream's response head. */
  upstreamMs: number;
  /**
   * True when the client's body has no length of its own (neither Content-Length nor chunked,
   * as Node sends to an HTTP/1.0 client): it ends with the connection, so only a reset, never a
   * close, can tell the client that a cut one is incomplete.
   */
  bodyEndsWithClose: boolean;
}

/** Who hears how an attempt ended. */
export interface ExchangeOwner {
  exchanged(result: ExchangeResult): void;
}

const CLIENT_CLOSED = 'client closed';

/**
 * undici times heads and bodies on a wheel that ticks every 499 ms and starts a timer up to one
 * tick early: a 700 ms `timeouts.response` fired at about 514 ms, a 504 for an answer that came
 * in time, blamed on the endpoint. One tick more makes it never early, and late by under a
 * second; a native timer per request would cost the hot path more.
 */
const FAST_TIMER_SLACK_MS = 500;

/** nginx's `send_timeout`: the client took none of the response for `limits.sendTimeout`. */
const CLIENT_STALLED: Fault = Object.freeze({ kind: 'client_error', status: 0, upstream: false, beforeSend: false, message: 'client read nothing past limits.sendTimeout' });

/**
 * A reader of the response the client is being sent, without holding it up (a shadow's
 * comparison reads the primary's answer through it). Called only for a response that started.
 */
export interface ResponseTap {
  head(status: number, rawHeaders: readonly Buffer[]): void;
  data(chunk: Buffer): void;
  /** The exchange ended; `complete` when the whole response reached the client. */
  end(complete: boolean): void;
}

/**
 * One attempt at one endpoint: streams the request body up and the response down with
 * backpressure both ways, and reports exactly once to its owner.
 *
 * Uses undici's dispatch handler callbacks (onConnect/onHeaders/onData/onComplete/onError)
 * directly: they are the core's own interface, so nothing wraps or re-parses the raw headers.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #drainHooked = false;
  /** Armed while the client's connection refuses more of the response. */
  #sendTimer: NodeJS.Timeout | undefined;
  #awaitingSocket = false;
  #finished = false;
  #responseStarted = false;
  /** The response head's fields, kept to judge how its body ends should the upstream reset. */
  #rawHeaders: Buffer[] = NO_FIELDS;
  #clientGone = false;
  #bytesOut = 0;
  #sentAt = 0;
  #upstreamMs = 0;
  #responseMs = 0;
  /** When the request's last byte went out: undici times the head from there (it refreshes its timer while a body goes up). */
  #requestSentAt = 0;
  /** The wait for the final head, armed at the first interim (1xx) answer: undici restarts its own at each one. null: due once the body is sent. */
  #interimTimer: NodeJS.Timeout | null | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly endpoint: Endpoint,
    private readonly body: RequestBody | null,
    private readonly owner: ExchangeOwner,
    /** How long the response may wait on a client that reads none of it (`limits.sendTimeout`). */
    private readonly sendTimeoutMs: number,
    /** Headers ficus adds to the client's response (e.g. an anonymous id cookie), flat. */
    private readonly extraHeaders?: readonly string[],
    private readonly tap?: ResponseTap,
  ) {}

  start(method: string, path: string, headers: string[], timeouts: Timeouts): void {
    this.endpoint.inflight++;
    this.#sentAt = performance.now();
    this.#responseMs = timeouts.responseMs;
    try {
      // `servername` is read by undici's Request, though its types do not list it.
      const options: Dispatcher.DispatchOptions & { servername: string } = { path, method, headers, servername: this.endpoint.servername, body: this.body, headersTimeout: timeouts.responseMs + FAST_TIMER_SLACK_MS, bodyTimeout: timeouts.idleMs + FAST_TIMER_SLACK_MS };
      this.endpoint.pool.dispatch(options, this);
    } catch (error) {
      this.onError(error as Error);
    }
  }

  /** The client went away: stop the upstream request without blaming the endpoint. */
  clientClosed(): void {
    if (this.#finished) return;
    this.#clientGone = true;
    this.#abort?.(new Error(CLIENT_CLOSED));
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#clientGone) abort(new Error(CLIENT_CLOSED));
  }

  onRequestSent(): void {
    this.#requestSentAt = performance.now();
    // An interim answer that came while the body was still going up is timed from its end.
    if (this.#interimTimer === null) this.#armInterim();
  }

  #armInterim(): void {
    const waited = performance.now() - this.#requestSentAt;
    this.#interimTimer = setTimeout(() => this.#abort?.(Object.assign(new Error('no final response head within timeouts.response'), { code: 'UND_ERR_HEADERS_TIMEOUT' })), Math.max(0, this.#responseMs - waited));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) {
      // A 102 or 103 every few seconds would otherwise hold the request for ever, the client
      // getting nothing: `timeouts.response` bounds the wait for the final head, 1xx or not,
      // counted as undici counts its own, from the request's last byte.
      if (this.#interimTimer === undefined) {
        if (this.#requestSentAt === 0) this.#interimTimer = null;
        else this.#armInterim();
      }
      return true;
    }
    clearTimeout(this.#interimTimer ?? undefined);
    this.#upstreamMs = performance.now() - this.#sentAt;
    const res = this.res;
    if (res.destroyed) {
      this.clientClosed();
      return false;
    }
    if (!soundTransferEncoding(rawHeaders)) {
      this.#abort?.(Object.assign(new Error('unsupported response Transfer-Encoding'), { code: 'FICUS_BAD_FRAMING' }));
      return false;
    }
    try {
      const headers = clientResponseHeaders(rawHeaders);
      if (statusCode === 204) dropContentLength(headers);
      if (this.extraHeaders !== undefined) headers.push(...this.extraHeaders);
      res.writeHead(statusCode, plainReason(statusCode, statusText), headers);
    } catch (error) {
      // writeHead keeps the reason it was given even when it throws; the 502 must not reuse it.
      res.statusMessage = '';
      // A header Node refuses to send (bad characters) is the upstream's fault: 502.
      this.#abort?.(Object.assign(new Error(`invalid upstream response header: ${(error as Error).message}`), { code: 'FICUS_BAD_HEADER' }));
      return false;
    }
    this.#responseStarted = true;
    this.#rawHeaders = rawHeaders;
    this.#resume = resume;
    this.tap?.head(statusCode, rawHeaders);
    // RFC 9112 §6.3: a 204 or 304 ends with its head. undici would fail one that has a
    // Content-Length (allowed on a 304, RFC 9110 §8.6) for want of a body that never comes.
    if (statusCode === 204 || statusCode === 304) this.onComplete();
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#bytesOut += chunk.length;
    this.tap?.data(chunk);
    if (this.res.write(chunk)) return true;
    // Most responses fit in the socket buffer; hook 'drain' only for those that do not.
    if (!this.#drainHooked) {
      this.#drainHooked = true;
      this.res.on('drain', () => this.#drained());
      this.res.once('close', () => clearTimeout(this.#sendTimer));
    }
    this.#watchClient();
    return false;
  }

  /**
   * Times how long the client leaves the response waiting. A pipelined response queued behind
   * another has no connection yet: its writes are refused because they wait their turn, not
   * because of the client, so the timer starts once the response has its socket.
   */
  #watchClient(): void {
    if (this.#sendTimer !== undefined) return;
    const socket = this.res.socket;
    if (socket === null) {
      if (this.#awaitingSocket) return;
      this.#awaitingSocket = true;
      this.res.once('socket', () => this.#watchClient());
      return;
    }
    this.#sendTimer = setTimeout(() => this.#stalled(), this.sendTimeoutMs);
  }

  #drained(): void {
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    this.#resume?.();
  }

  /**
   * Backpressure keeps a client that stopped reading from costing memory, but not from holding
   * its connection (and, until the response is all read, the upstream's) for as long as it
   * keeps the TCP connection open.
   */
  #stalled(): void {
    if (this.#finished) return void this.res.destroy();
    // The handler destroys the response on this fault.
    this.#finish(CLIENT_STALLED);
    this.#abort?.(new Error(CLIENT_CLOSED));
  }

  onComplete(): void {
    if (this.#finished) return;
    // undici ends a body delimited by the connection's close on a reset as on a clean close. A
    // reset means it was cut (RFC 9112 §6.3): the client must see its connection dropped, never
    // a response that looks complete.
    if (upstreamResetting() && closeDelimited(this.res.statusCode, this.#rawHeaders)) {
      this.onError(Object.assign(new Error('the upstream reset a response whose end is its close'), { code: 'ECONNRESET' }));
      return;
    }
    this.#finish(undefined);
    this.res.end();
  }

  onError(error: Error): void {
    this.#finish(classify(error, this.#clientGone ? 'client_abort' : this.body?.fault));
  }

  #finish(fault: Fault | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#interimTimer ?? undefined);
    this.endpoint.inflight--;
    this.owner.exchanged({
      status: fault ? 0 : this.res.statusCode,
      fault,
      responseStarted: this.#responseStarted,
      bytesOut: this.#bytesOut,
      upstreamMs: this.#upstreamMs,
      bodyEndsWithClose: fault !== undefined && this.#responseStarted && this.bodyEndsWithClose(),
    });
  }

  /** writeHead chose the client's framing: chunked, the upstream's Content-Length, or the connection's close. Only once the response started. */
  bodyEndsWithClose(): boolean {
    const res = this.res;
    const status = res.statusCode;
    return !res.chunkedEncoding && status !== 204 && status !== 304 && res.req.method !== 'HEAD' && !hasField(this.#rawHeaders, 'content-length');
  }
}

const CHUNKED = /^chunked *$/i;
const NO_FIELDS: Buffer[] = [];

/** Whether the raw fields hold `lowerName` (lower case). */
function hasField(raw: Buffer[], lowerName: string): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as Buffer;
    if (name.length === lowerName.length && name.toString('latin1').toLowerCase() === lowerName) return true;
  }
  return false;
}

/** An upstream body with neither Content-Length nor Transfer-Encoding ends when the connection does. */
function closeDelimited(statusCode: number, raw: Buffer[]): boolean {
  if (statusCode === 204 || statusCode === 304) return false;
  return !hasField(raw, 'content-length') && !hasField(raw, 'transfer-encoding');
}

/**
 * A response may be chunked, once, and carry no other transfer coding: nginx answers 502 to
 * anything else. undici reads any other Transfer-Encoding (or `chunked` followed by a tab) until
 * the upstream closes, and ficus, stripping the header, would pass the coded bytes (chunk
 * framing, gzip) on as the body.
 */
function soundTransferEncoding(raw: Buffer[]): boolean {
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as Buffer;
    if (name.length !== 17 || name.toString('latin1').toLowerCase() !== 'transfer-encoding') continue;
    if (seen || !CHUNKED.test((raw[i + 1] as Buffer).toString('latin1'))) return false;
    seen = true;
  }
  return true;
}

/**
 * The upstream's reason phrase when it is plain visible ASCII, else the standard one. RFC 9112
 * allows any Latin-1 byte there, but undici hands it over decoded as UTF-8, so its bytes can no
 * longer be told; Node refuses what is not Latin-1. The reason carries no meaning (RFC 9110
 * §15): Envoy drops it altogether.
 */
function plainReason(statusCode: number, statusText: string): string | undefined {
  // The usual answer carries the standard reason, which Node writes anyway: no test for it.
  if (statusText === '' || statusText === STATUS_CODES[statusCode]) return undefined;
  return PLAIN_REASON.test(statusText) ? statusText : undefined;
}

const PLAIN_REASON = /^[\t\x20-\x7e]*$/;
