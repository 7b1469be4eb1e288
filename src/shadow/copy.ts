import type { IncomingMessage } from 'node:http';
import type { Dispatcher, Pool } from 'undici';
import type { Colour, ShadowDef } from '../config/snapshot.js';
import type { ResponseTap } from '../proxy/forward.js';
import type { Endpoint } from '../upstream/endpoint.js';
import { holdPool } from '../upstream/pool-holds.js';
import type { BodyCapture } from './body-capture.js';
import { captureBody, compareAnswers, type Answer, type Verdict } from './compare.js';
import type { RawHeaders } from './response-headers.js';

/** Sent with every copy, so a service can tell copies from live traffic (and, say, not email anyone). */
export const SHADOW_HEADER = 'x-ficus-shadow';

export type DropReason = 'saturated' | 'body_too_large';
export type ComparisonResult = 'match' | 'mismatch' | 'error' | 'skipped';

/** Where one copy goes and what it carries: the primary's method, path and prepared headers. */
export interface CopyTarget {
  readonly route: string;
  readonly def: ShadowDef;
  readonly colour: Colour | '';
  readonly endpoint: Endpoint;
  readonly method: string;
  readonly path: string;
  readonly headers: readonly string[];
  /** Keys a mismatch may not name: the caller's id (see `compareAnswers`). */
  readonly hidden: ReadonlySet<string> | undefined;
  /**
   * The request carries validators (If-None-Match, If-Modified-Since, If-Match…). They were
   * minted by the primary, and validators are service-specific (etag and last-modified are not
   * compared), so a 304 or 412 on one side only tells nothing about the two services.
   */
  readonly conditional?: boolean;
}

/** Answers to a validator: 304 Not Modified, 412 Precondition Failed. */
const VALIDATOR_ANSWERS = new Set([304, 412]);

/** What a copy reports to its mirror; none of it may throw back into the primary's path. */
export interface CopyReport {
  /** The copy no longer occupies a place among the route's copies in flight. */
  released(): void;
  dropped(reason: DropReason): void;
  /** One shadow exchange, for requests_total{side="shadow"}; status 0 when none came back. */
  exchanged(status: number, seconds: number): void;
  compared(result: ComparisonResult, verdict: Verdict | undefined): void;
  failed(error: unknown): void;
}

interface ShadowAnswer {
  readonly status: number;
  readonly rawHeaders: RawHeaders;
  readonly body: BodyCapture | undefined;
}

/**
 * One request copied to the shadow service. It reads the primary's answer through the tap
 * (only with `compare`), sends the copy on its own deadline, and judges once both sides are
 * done. It never waits on, slows or aborts the primary: the client's leaving does not stop it,
 * and its own failure only counts against the shadow.
 */
export class ShadowCopy implements ResponseTap {
  #primary: Answer | undefined;
  /** undefined until the primary's exchange ends; then whether its answer is whole. */
  #primaryComplete: boolean | undefined;
  #shadow: ShadowAnswer | 'failed' | undefined;
  /** Counted: compared, or given up; nothing more to do. */
  #settled = false;
  #released = false;
  /** The copy is waiting for the client's body or out at the shadow: it keeps its place among the copies in flight until then. */
  #sending = false;
  /** Armed once the shadow has answered, while the primary's answer is still coming. */
  #waitForPrimary: NodeJS.Timeout | undefined;

  /**
   * The pool the copy goes out on, kept open through a reload until the copy is handed to it:
   * the endpoint's own may be replaced meanwhile (a blue/green colour going inactive).
   */
  readonly #pool: Pool;
  readonly #unhold: () => void;

  constructor(
    private readonly target: CopyTarget,
    private readonly report: CopyReport,
  ) {
    this.#pool = target.endpoint.pool;
    this.#unhold = holdPool(this.#pool);
  }

  /**
   * Sends the copy: a bodyless request on the next turn of the event loop (after the primary
   * was dispatched), one with a body once the client has sent all of it. The client's body is
   * read from the same 'data' events the primary reads; pausing stays the primary's business.
   * A body over `limits.maxBodyBytes` got the client a 413 and is never copied either.
   */
  start(req: IncomingMessage, hasBody: boolean, requestLimit = Number.POSITIVE_INFINITY): void {
    this.#sending = true;
    if (!hasBody) {
      setImmediate(() => this.#send(null));
      return;
    }
    const max = Math.min(this.target.def.maxBodyBytes, requestLimit);
    const chunks: Buffer[] = [];
    let size = 0;
    const detach = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.socket.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= max) return void chunks.push(chunk);
      detach();
      this.#giveUp('body_too_large');
    };
    const onEnd = (): void => {
      detach();
      this.#send(Buffer.concat(chunks, size));
    };
    // The client left before its body was whole: there is nothing faithful to copy.
    const onClose = (): void => {
      detach();
      this.#giveUp(undefined);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    // Node drops a request whose response went out before its body was whole: neither 'end'
    // nor 'close' comes then, but its connection's close does.
    req.socket.once('close', onClose);
  }

  head(status: number, rawHeaders: readonly Buffer[]): void {
    if (this.#settled || this.#primaryComplete !== undefined) return;
    try {
      this.#primary = { status, rawHeaders, body: captureBody(rawHeaders, this.target.def) };
    } catch (error) {
      this.report.failed(error);
    }
  }

  data(chunk: Buffer): void {
    // Past maxBodyBytes the primary's answer cannot be compared: the copy gives up its place
    // (and the shadow's answer) now, not when a long download ends.
    if (this.#primary !== undefined && !this.#primary.body.add(chunk)) this.#settle('skipped', undefined);
  }

  end(complete: boolean): void {
    if (this.#primaryComplete !== undefined) return;
    this.#primaryComplete = complete && this.#primary !== undefined;
    // A cut-short answer is never compared: its bytes need not wait for the shadow.
    if (!this.#primaryComplete) this.#primary = undefined;
    // Called before the primary's last bytes are written: the comparison (a decompression, two
    // JSON parses) waits until they are out, so the client is never slowed by it (SPEC §1.5).
    setImmediate(() => this.#judge());
  }

  #send(body: Buffer | null): void {
    this.#exchange(body).catch((error: unknown) => this.report.failed(error));
  }

  async #exchange(body: Buffer | null): Promise<void> {
    const { endpoint } = this.target;
    const started = performance.now();
    let answer: ShadowAnswer | undefined;
    let retired = false;
    endpoint.inflight++;
    try {
      answer = await this.#request(endpoint, body);
    } catch (error) {
      // Refused, reset, timed out: the shadow's failure, counted below and never the client's.
      retired = poolRetired(error);
    } finally {
      endpoint.inflight--;
      this.#sending = false;
      // A copy to compare keeps its place (and the answer it holds) until it is judged:
      // maxConcurrent is what bounds the memory held for comparisons. One judged before its
      // exchange ended (the primary outgrew maxBodyBytes) gives its place back only now.
      if (!this.target.def.compare || this.#settled) this.#release();
    }
    // A reload (or the drain) retired the shadow's pool while the client's body was still
    // coming: the copy was never sent, which is no failure of the shadow's.
    if (retired) return this.#giveUp(undefined);
    this.report.exchanged(answer?.status ?? 0, (performance.now() - started) / 1000);
    this.#shadow = answer ?? 'failed';
    this.#judge();
    // A primary still streaming (server-sent events, a long poll, a slow download) would keep
    // this copy's place, and the shadow's answer, for as long as it lasts: after the copy's own
    // deadline again, the comparison is given up.
    if (!this.#settled && this.target.def.compare) {
      this.#waitForPrimary = setTimeout(() => this.#settle('skipped', undefined), this.target.def.timeoutMs);
      this.#waitForPrimary.unref();
    }
  }

  async #request(endpoint: Endpoint, body: Buffer | null): Promise<ShadowAnswer> {
    const { def, method, path, headers } = this.target;
    const sent = this.#pool.request({
      method,
      path: endpoint.def.basePath + path,
      headers: [...headers, SHADOW_HEADER, '1'],
      servername: endpoint.servername,
      body,
      // One deadline for the whole exchange; the undici timeouts only make it fail sooner.
      signal: AbortSignal.timeout(def.timeoutMs),
      headersTimeout: def.timeoutMs,
      bodyTimeout: def.timeoutMs,
      responseHeaders: 'raw',
    } as Dispatcher.RequestOptions<null>);
    // In the pool now: its graceful close waits for it.
    this.#unhold();
    const res = await sent;
    const rawHeaders = res.headers as unknown as string[];
    const capture = def.compare ? captureBody(rawHeaders, def) : undefined;
    try {
      for await (const chunk of res.body) {
        // Over maxBodyBytes the answer is not compared: reading the rest would be wasted.
        // Already judged (skipped): the rest is read to the end, but nothing more is kept.
        if (capture !== undefined && !this.#settled && !capture.add(chunk as Buffer)) break;
      }
    } catch (error) {
      // RFC 9112 §6.3: a 204 or 304 ends with its head. undici fails one that has a Content-Length
      // (allowed on a 304, RFC 9110 §8.6) for want of a body that never comes.
      if (res.statusCode !== 204 && res.statusCode !== 304) throw error;
    }
    return { status: res.statusCode, rawHeaders, body: capture };
  }

  /** Dropped before it was sent, or abandoned with its client. */
  #giveUp(reason: DropReason | undefined): void {
    this.#sending = false;
    this.#release();
    if (reason !== undefined) this.report.dropped(reason);
    this.#settle('skipped', undefined);
  }

  #judge(): void {
    if (this.#settled || !this.target.def.compare) return;
    const shadow = this.#shadow;
    if (shadow === undefined) return;
    // A failed shadow is an error whatever the primary did: it is what the operator must see.
    if (shadow === 'failed') return this.#settle('error', undefined);
    if (this.#primaryComplete === undefined) return;
    const primary = this.#primary;
    // A primary answer cut short has nothing whole to compare with.
    if (!this.#primaryComplete || primary === undefined || shadow.body === undefined) return this.#settle('skipped', undefined);
    if (this.target.conditional === true && primary.status !== shadow.status && (VALIDATOR_ANSWERS.has(primary.status) || VALIDATOR_ANSWERS.has(shadow.status))) {
      return this.#settle('skipped', undefined);
    }
    let verdict: Verdict;
    try {
      verdict = compareAnswers(primary, { status: shadow.status, rawHeaders: shadow.rawHeaders, body: shadow.body }, this.target.def, this.target.hidden);
    } catch (error) {
      this.report.failed(error);
      return this.#settle('skipped', undefined);
    }
    this.#settle(verdict.result, verdict);
  }

  #settle(result: ComparisonResult, verdict: Verdict | undefined): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#waitForPrimary);
    // A copy still out at the shadow keeps its place until its exchange ends: maxConcurrent
    // bounds the copies in flight, whatever became of their comparison.
    if (!this.#sending) this.#release();
    // Nothing of either answer is needed any more; a slow primary must not keep the shadow's body.
    this.#primary = undefined;
    this.#shadow = undefined;
    if (this.target.def.compare) this.report.compared(result, verdict);
  }

  #release(): void {
    this.#unhold();
    if (this.#released) return;
    this.#released = true;
    this.report.released();
  }
}

/** undici's answer to a request on a pool that was closed or destroyed before it was sent. */
function poolRetired(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED';
}
