import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Colour, Snapshot } from '../config/snapshot.js';
import { FrameCursor, goingAwayFrame, OPCODE_CLOSE } from './ws-frames.js';

/** Once one side is gone, how long the other may take to finish closing. */
const HALF_CLOSED_MS = 5_000;

/** Where a tunnel was sent: what a reload, an ejection or a rollback asks about it. */
export interface TunnelPlace {
  readonly route: string;
  /** The route's definition when the tunnel opened. */
  readonly fingerprint: string;
  readonly side: string;
  readonly service: string;
  readonly colour: Colour | '';
  /** Opened by a preview token, on the colour that serves no live traffic. */
  readonly preview: boolean;
  readonly origin: string;
  /** The path of the service URL the tunnel's handshake was sent under. */
  readonly basePath: string;
  /** The handshake, to be decided again on a reload, and the id its caller was bucketed by. */
  readonly request: IncomingMessage;
  readonly callerId: string | undefined;
}

/** Whether `snapshot` no longer has the tunnel's route as it was, or its endpoint in its service. */
export function movedIn(snapshot: Snapshot, place: TunnelPlace): boolean {
  const route = snapshot.routes.find((r) => r.name === place.route);
  const service = snapshot.services.get(place.service);
  const groups = service === undefined ? [] : service.colours === undefined ? [service] : [service.colours.blue, service.colours.green];
  return route?.fingerprint !== place.fingerprint || !groups.some((group) => group.endpoints.some((e) => e.origin === place.origin && e.basePath === place.basePath));
}

/**
 * One direction of a tunnel. Bytes pass untouched while a cursor follows the frame headers;
 * once asked to stop, the frame in progress is finished, our Close goes in right after it and
 * the rest is dropped (still read, to see the peer's Close).
 */
class Relay {
  readonly cursor: FrameCursor;
  bytes = 0;
  #stopping = false;
  #injected = false;
  #waiting = false;

  constructor(
    private readonly from: Duplex,
    private readonly to: Duplex,
    private readonly closeFrame: () => Buffer,
    onFrame: (opcode: number) => void,
    private readonly onInjected: () => void,
  ) {
    this.cursor = new FrameCursor((opcode) => onFrame(opcode));
  }

  get injected(): boolean {
    return this.#injected;
  }

  push(chunk: Buffer): void {
    if (this.#injected) {
      this.cursor.advance(chunk);
      return;
    }
    const upTo = this.#stopping ? this.cursor.advance(chunk, 0, true) : this.cursor.advance(chunk);
    if (upTo > 0) this.#write(upTo === chunk.length ? chunk : chunk.subarray(0, upTo));
    if (this.#stopping && this.cursor.atBoundary) {
      this.#inject();
      if (upTo < chunk.length) this.cursor.advance(chunk, upTo);
    }
  }

  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.cursor.atBoundary) this.#inject();
  }

  #write(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.to.write(chunk) || this.#waiting) return;
    this.#waiting = true;
    this.from.pause();
    this.to.once('drain', () => {
      this.#waiting = false;
      this.from.resume();
    });
  }

  #inject(): void {
    this.#injected = true;
    if (this.to.writable) this.to.write(this.closeFrame());
    this.onInjected();
  }
}

/** An open WebSocket tunnel: two relays, and the close handshake ficus starts on drain or reload. */
export class Tunnel {
  readonly #toUpstream: Relay;
  readonly #toClient: Relay;
  #closing = false;
  #clientAnswered = false;
  #upstreamAnswered = false;
  #closedSockets = 0;
  #graceMs = 0;
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(
    readonly place: TunnelPlace,
    private readonly client: Duplex,
    private readonly upstream: Duplex,
    private readonly onEnd: () => void,
  ) {
    this.#toUpstream = new Relay(client, upstream, () => goingAwayFrame(randomBytes(4)), (opcode) => this.#frameFrom('client', opcode), () => this.#closeSent(upstream));
    this.#toClient = new Relay(upstream, client, () => goingAwayFrame(), (opcode) => this.#frameFrom('upstream', opcode), () => this.#closeSent(client));
  }

  get bytesIn(): number {
    return this.#toUpstream.bytes;
  }

  get bytesOut(): number {
    return this.#toClient.bytes;
  }

  start(head: Buffer, upstreamHead: Buffer): void {
    for (const [from, to, relay] of [[this.client, this.upstream, this.#toUpstream], [this.upstream, this.client, this.#toClient]] as const) {
      from.on('data', (chunk: Buffer) => relay.push(chunk));
      from.on('end', () => this.#halfClosed(to));
      from.on('close', () => this.#socketClosed(to));
    }
    this.client.resume();
    this.upstream.resume();
    if (upstreamHead.length > 0) this.#toClient.push(upstreamHead);
    if (head.length > 0) this.#toUpstream.push(head);
  }

  /**
   * Close 1001 both ways at the next frame boundaries; each socket is ended `graceMs` after our
   * Close went out on it, and both are destroyed at `deadlineMs`.
   */
  shutdown(graceMs: number, deadlineMs: number): void {
    // Asked again (a drain after a reload closed it): only an earlier deadline can matter.
    this.#timers.push(
      setTimeout(() => {
        this.client.destroy();
        this.upstream.destroy();
      }, deadlineMs),
    );
    if (this.#closing) return;
    this.#closing = true;
    this.#graceMs = graceMs;
    this.#toClient.stop();
    this.#toUpstream.stop();
  }

  /**
   * Our Close is out on `to`'s connection: it has the grace to answer. Timed from here, not from
   * the request to close: ending a socket while a large frame is still being relayed to it
   * would cut the frame, and the Close behind it, short.
   */
  #closeSent(to: Duplex): void {
    this.#timers.push(setTimeout(() => to.end(), this.#graceMs));
    this.#maybeEnd();
  }

  #frameFrom(peer: 'client' | 'upstream', opcode: number): void {
    if (!this.#closing || opcode !== OPCODE_CLOSE) return;
    if (peer === 'client') this.#clientAnswered = true;
    else this.#upstreamAnswered = true;
    this.#maybeEnd();
  }

  /** A peer that answered our Close, and has it, is done with: its socket is ended. */
  #maybeEnd(): void {
    if (this.#clientAnswered && this.#toClient.injected) this.client.end();
    if (this.#upstreamAnswered && this.#toUpstream.injected) this.upstream.end();
  }

  /**
   * One peer finished sending: the other is told (a FIN), and has HALF_CLOSED_MS to finish too.
   * Sockets given up by the HTTP server allow half-open connections, so without this bound a
   * client gone quiet behind a silent upstream would hold the tunnel (and the gauge) for ever.
   */
  #halfClosed(other: Duplex): void {
    other.end();
    this.#timers.push(
      setTimeout(() => {
        this.client.destroy();
        this.upstream.destroy();
      }, HALF_CLOSED_MS),
    );
  }

  #socketClosed(other: Duplex): void {
    if (++this.#closedSockets === 2) {
      for (const timer of this.#timers) clearTimeout(timer);
      this.onEnd();
      return;
    }
    // One side is gone: the other gets what was already written to it, then its connection ends.
    other.end();
    this.#timers.push(setTimeout(() => other.destroy(), HALF_CLOSED_MS));
  }
}

