import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Snapshot } from '../config/snapshot.js';
import type { Generation } from '../config/store.js';
import { EVENT } from '../observe/log.js';
import { keepForNext } from './connection-turns.js';
import { planRequest } from './plan.js';
import { endWith, errorResponse } from './raw-response.js';
import { requestIds } from './request-id.js';
import { headCountSound, hostIsSound } from './server.js';
import { isWebSocket, plainHead } from './upgrade.js';
import { CLOSE_GRACE_MS, RECONCILE_DEADLINE_MS, WebSocketUpgrade, type TunnelDeps, type UpgradeRegistry } from './ws-upgrade.js';
import { movedIn, type Tunnel, type TunnelPlace } from './ws-relay.js';

/** What an upgrade waiting behind an earlier response may hold of what its client sends next. */
const WAITING_BYTES = 64 * 1024;

/**
 * Upgrades on the edge listener (SPEC §1.7), and the WebSocket tunnels they opened: each
 * WebSocket upgrade is one `WebSocketUpgrade`; tunnels are closed with 1001 on drain or when a
 * reload, an ejection or a rollback moves their route. Any other upgrade (h2c…) is not
 * tunnelled: the request is served as plain HTTP/1.1.
 */
export class Tunnels {
  readonly #open = new Set<Tunnel>();
  /** Upgrades waiting for their upstream's answer, aborted by `close`. */
  readonly #pending = new Set<() => void>();
  /** Clients being sent an upstream's refusal: a drain lets them have it until its deadline. */
  readonly #relaying = new Set<Duplex>();
  #closing = false;
  #onEmpty: (() => void) | undefined;
  readonly #registry: UpgradeRegistry;

  constructor(private readonly deps: TunnelDeps) {
    this.#registry = {
      closing: () => this.#closing,
      waiting: (abort) => this.#pending.add(abort),
      answered: (abort) => this.#pending.delete(abort),
      relaying: (client) => this.#relaying.add(client),
      relayed: (client) => this.#relaying.delete(client),
      opened: (tunnel) => this.#open.add(tunnel),
      ended: (tunnel) => {
        this.#open.delete(tunnel);
        if (this.#open.size === 0) this.#onEmpty?.();
      },
    };
  }

  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroyOnError);
    this.#dispatch(req, socket, head);
  }

  #dispatch(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node hands the upgrade over while responses to requests pipelined before it may still be
    // on their way: anything written now would overtake them, and they would land in the tunnel.
    keepForNext(socket);
    const earlier = (socket as { _httpMessage?: (ServerResponse & { _last?: boolean }) | null })._httpMessage;
    // A response before it closes the connection (a 400, a Connection: close): Node serves no
    // more requests on it, and an upgrade parsed before then must not be served either.
    if (socket.writableEnded || socket.destroyed || earlier?._last === true || earlier?.shouldKeepAlive === false) return void socket.destroy();
    // Waited for even when its bytes are all out (writableFinished): the connection is still its
    // own until its 'finish', where Node hands the socket on. A request replayed before then is
    // queued behind it on the replayed parser, where no 'finish' ever looks, and never answered.
    if (earlier != null) return this.#afterEarlier(earlier, req, socket, head);
    if (!hostIsSound(req)) {
      this.deps.metrics.edgeRefused(400);
      return endWith(socket, errorResponse(400, requestIds.next()));
    }
    if (!headCountSound(req, this.deps.current().snapshot.limits.maxHeaderCount)) {
      this.deps.metrics.edgeRefused(431);
      return endWith(socket, errorResponse(431, requestIds.next()));
    }
    if (!isWebSocket(req)) return this.#replay(req, socket, head);
    try {
      new WebSocketUpgrade(this.deps, this.#registry, req, socket).start(head);
    } catch (error) {
      this.deps.logger.error({ event: EVENT.internalError, err: error }, 'websocket upgrade failed');
      endWith(socket, errorResponse(500, requestIds.next()));
    }
  }

  /** Holds the upgrade (and whatever the client sends meanwhile) until the earlier response is out. */
  #afterEarlier(earlier: ServerResponse, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const chunks = [head];
    let size = head.length;
    // What the client sends meanwhile is kept for the tunnel, up to a bound: past it, the client
    // is not read until its upgrade's turn comes, or one connection could fill the memory.
    const keep = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > WAITING_BYTES) socket.pause();
    };
    socket.on('data', keep);
    earlier.once('finish', () =>
      // Node moves the next queued response onto the socket in its own 'finish' listener.
      setImmediate(() => {
        socket.off('data', keep);
        socket.pause();
        if (!socket.destroyed) this.#dispatch(req, socket, Buffer.concat(chunks));
      }),
    );
  }

  /**
   * Closes every tunnel whose route is gone or changed, or whose endpoint left its service, and
   * every one whose handshake would now go to another route or service, or be answered by
   * ficus (a kill switch thrown, a cohort changed, a route added above it).
   */
  reconcile(snapshot: Snapshot): void {
    const generation = this.deps.current();
    this.closeWhere((place) => movedIn(snapshot, place) || this.#routedElsewhere(generation, place));
  }

  /** Decided with the id the handshake was: an anonymous caller's draws come out as they did then. */
  #routedElsewhere(generation: Generation, place: TunnelPlace): boolean {
    const callerId = place.callerId;
    const plan = planRequest(generation, place.request, this.deps.guards, callerId === undefined ? undefined : () => callerId);
    if (plan.kind !== 'forward' || plan.route.name !== place.route || plan.service.def.name !== place.service) return true;
    // A preview tunnel lasts as long as its token's access (turned off or changed: it ends),
    // unless its colour is now the one live traffic gets. A cutover leaves it, as it leaves others.
    return place.preview && !plan.preview && plan.colour !== place.colour;
  }

  /**
   * Closes (1001) the tunnels `moved` picks: a tunnel lives for hours, so when its side is ejected
   * or its colour rolled back, its users must reconnect to be sent where they now belong.
   */
  closeWhere(moved: (place: TunnelPlace) => boolean): void {
    for (const tunnel of this.#open) if (moved(tunnel.place)) tunnel.shutdown(CLOSE_GRACE_MS, RECONCILE_DEADLINE_MS);
  }

  /** Drain: no new tunnels; each open one is closed with 1001; resolves when all are gone. */
  async close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    for (const abort of [...this.#pending]) abort();
    if (this.#relaying.size > 0) {
      const relaying = this.#relaying;
      // An upstream may answer an upgrade with an endless stream: it must not hold the exit.
      setTimeout(() => {
        for (const client of relaying) client.destroy();
      }, timeoutMs).unref();
    }
    if (this.#open.size === 0) return;
    const emptied = new Promise<void>((resolve) => (this.#onEmpty = resolve));
    for (const tunnel of this.#open) tunnel.shutdown(Math.min(CLOSE_GRACE_MS, timeoutMs / 2), timeoutMs);
    await emptied;
  }

  /**
   * Serves a non-WebSocket upgrade as the plain request it also is (RFC 9110 §7.8 lets a server
   * ignore Upgrade): the head is rebuilt without the upgrade's fields and read again by the edge
   * server, with whatever followed it (a body, a pipelined request) behind it.
   */
  #replay(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.unshift(Buffer.concat([Buffer.from(plainHead(req), 'latin1'), head]));
    // The edge server listens for the socket's errors again; one listener per replayed request
    // would pile up on a keep-alive connection.
    socket.off('error', destroyOnError);
    this.deps.replay(socket);
    // Paused when the upgrade had to wait for an earlier response.
    socket.resume();
  }
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}
