import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/** A declared length other than 0, or any transfer coding: the request has a body to stream. */
export function hasRequestBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/** Why a request body ended early on the client's side. */
export type BodyFault = 'client_abort' | 'too_large';

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

  readonly #onData = (chunk: Buffer): void => {
    this.#remaining -= chunk.length;
    if (this.#remaining < 0) return this.#fail('too_large');
    if (!this.push(chunk)) this.#req.pause();
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.push(null);
  };

  readonly #onClose = (): void => {
    if (!this.#ended) this.#fail('client_abort');
  };

  constructor(req: IncomingMessage, maxBytes: number | undefined) {
    super();
    this.#req = req;
    this.#remaining = maxBytes ?? Number.POSITIVE_INFINITY;
    req.on('data', this.#onData);
    req.on('end', this.#onEnd);
    req.on('close', this.#onClose);
  }

  override _read(): void {
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
    this.destroy(Object.assign(new Error(fault === 'too_large' ? 'request body too large' : 'client went away'), { code: 'FICUS_BODY' }));
  }

  #detach(): void {
    const req = this.#req;
    req.off('data', this.#onData);
    req.off('end', this.#onEnd);
    req.off('close', this.#onClose);
    // Nobody reads the rest any more; a paused socket would keep the client waiting for its
    // answer while its buffers fill.
    if (!this.#ended && !req.destroyed) req.resume();
  }
}
