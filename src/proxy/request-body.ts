import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/** A declared length other than 0, or any transfer coding: the request has a body to stream. */
export function hasRequestBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * A body ficus answered without forwarding (a `respond` route, a 404, a 503) is read and dropped
 * so that the connection can carry the next request. Its pace is held to `limits.bodyTimeout`
 * as a forwarded body's is: a client that stalls it loses the connection (as after nginx's
 * discarded bodies) instead of holding it for as long as it drips a byte now and then. Read
 * here rather than left to Node's own dump, which drops the chunks before any listener sees them.
 */
export function discardWithin(req: IncomingMessage, stallMs: number): void {
  if (req.complete || !hasRequestBody(req)) return;
  const timer = setTimeout(() => req.socket.destroy(), stallMs);
  timer.unref();
  const refresh = (): void => void timer.refresh();
  const done = (): void => {
    clearTimeout(timer);
    req.off('data', refresh);
  };
  req.on('data', refresh);
  req.once('end', done);
  req.once('close', done);
  req.resume();
}

/** Why a request body ended early on the client's side. */
export type BodyFault = 'client_abort' | 'too_large' | 'stalled';

/**
 * The client's request body as undici reads it, with backpressure: push() refusing pauses the
 * client's socket, undici's next read resumes it.
 *
 * Why not hand undici the IncomingMessage itself: undici destroys the body stream when the
 * upstream fails, and destroying an unfinished IncomingMessage destroys the client's socket,
 * so the client would see a reset instead of the 502 it is owed. This wrapper keeps the two
 * apart, says whether it was the client that cut the body short (so the endpoint is not
 * blamed), and enforces `limits.maxBodyBytes` on bodies that came without a Content-Length.
 */
export class RequestBody extends Readable {
  /** Set before the stream errors because of the client, never because of the upstream. */
  fault: BodyFault | undefined;
  readonly #req: IncomingMessage;
  #remaining: number;
  #ended = false;
  /**
   * Runs only while ficus waits on the client (not while the upstream's backpressure holds the
   * client paused): a body stalled that long pins an upstream connection for nothing.
   */
  #stall: NodeJS.Timeout | undefined;
  readonly #stallMs: number;

  readonly #onData = (chunk: Buffer): void => {
    this.#remaining -= chunk.length;
    if (this.#remaining < 0) return this.#fail('too_large');
    if (this.push(chunk)) this.#waitForClient();
    else {
      this.#stopWaiting();
      this.#req.pause();
    }
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#stopWaiting();
    this.push(null);
  };

  readonly #onClose = (): void => {
    if (!this.#ended) this.#fail('client_abort');
  };

  constructor(req: IncomingMessage, maxBytes: number | undefined, stallMs: number) {
    super();
    this.#req = req;
    this.#remaining = maxBytes ?? Number.POSITIVE_INFINITY;
    this.#stallMs = stallMs;
    this.#waitForClient();
    req.on('data', this.#onData);
    req.on('end', this.#onEnd);
    req.on('close', this.#onClose);
  }

  override _read(): void {
    if (!this.#ended && !this.fault) this.#waitForClient();
    this.#req.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#detach();
    callback(error);
  }

  #fail(fault: BodyFault): void {
    if (this.fault || this.destroyed) return;
    this.fault = fault;
    this.#detach();
    const message = fault === 'too_large' ? 'request body too large' : fault === 'stalled' ? 'request body stalled' : 'client went away';
    this.destroy(Object.assign(new Error(message), { code: 'FICUS_BODY' }));
  }

  #waitForClient(): void {
    if (this.#stall !== undefined) this.#stall.refresh();
    else {
      this.#stall = setTimeout(() => this.#fail('stalled'), this.#stallMs);
      this.#stall.unref();
    }
  }

  #stopWaiting(): void {
    clearTimeout(this.#stall);
    this.#stall = undefined;
  }

  #detach(): void {
    this.#stopWaiting();
    const req = this.#req;
    req.off('data', this.#onData);
    req.off('end', this.#onEnd);
    req.off('close', this.#onClose);
    // Nobody reads the rest any more; a paused socket would keep the client waiting for its
    // answer while its buffers fill.
    if (!this.#ended && !req.destroyed) req.resume();
  }
}
