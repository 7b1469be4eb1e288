import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Colour, Snapshot } from '../config/snapshot.js';
import type { Generation } from '../config/store.js';
import { EVENT, type Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { GuardEvent } from '../rollout/guard.js';
import type { Endpoint } from '../upstream/endpoint.js';
import { acceptRequestId, clientResponseHeaders, dropContentLength, upstreamRequestHeaders } from './headers.js';
import { planRequest, type ForwardPlan, type Guards } from './plan.js';
import { configuredResponse, errorResponse, responseHead } from './raw-response.js';
import { hasRequestBody } from './request-body.js';
import { hostIsSound } from './server.js';
import { isWebSocket, plainHead } from './upgrade.js';
import { askUpstream } from './ws-handshake.js';
import { movedIn, Tunnel, type TunnelPlace } from './ws-relay.js';

export interface TunnelDeps {
  current: () => Generation;
  metrics: Metrics;
  logger: Logger;
  /** Guarded cutovers: the handshake's outcome counts in the guard's window like a request's. */
  guards?: (Guards & { onEvent?(event: GuardEvent): void }) | undefined;
  /** Hands a socket back to the edge server, to be read as plain HTTP from its next byte. */
  replay: (socket: Duplex) => void;
}

/** How long a tunnel asked to close waits for both peers to answer its Close before ending the sockets. */
const CLOSE_GRACE_MS = 1_000;
/** After a reload, an ejection or a rollback moved a tunnel: when whatever is left of it is destroyed. */
const RECONCILE_DEADLINE_MS = 5_000;


/** What one upgrade request was and where it went, for its metric and access log line. */
interface Handshake {
  readonly requestId: string;
  readonly started: number;
  readonly accessLog: boolean;
  path: string;
  route: string;
  service: string;
  side: string;
  colour: Colour | '';
  preview: boolean;
  legacy: boolean;
  endpoint: string;
  fault: string | undefined;
}

/**
 * WebSocket upgrades (SPEC §1.7): planned by the same decision as plain requests, tunnelled
 * byte for byte to one endpoint, closed with 1001 on drain or when a reload moves their route.
 * Any other upgrade (h2c…) is not tunnelled: the request is served as plain HTTP/1.1.
 */
export class Tunnels {
  readonly #open = new Set<Tunnel>();
  /** Upgrades waiting for their upstream's answer, aborted by `close`. */
  readonly #pending = new Set<() => void>();
  /** Clients being sent an upstream's refusal: a drain lets them have it until its deadline. */
  readonly #relaying = new Set<Duplex>();
  #closing = false;
  #onEmpty: (() => void) | undefined;

  constructor(private readonly deps: TunnelDeps) {}

  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroyOnError);
    this.#dispatch(req, socket, head);
  }

  #dispatch(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node hands the upgrade over while responses to requests pipelined before it may still be
    // on their way: anything written now would overtake them, and they would land in the tunnel.
    const earlier = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (earlier != null && !earlier.writableFinished) return this.#afterEarlier(earlier, req, socket, head);
    if (!hostIsSound(req)) return void socket.end(errorResponse(400, randomUUID()));
    if (!isWebSocket(req)) return this.#replay(req, socket, head);
    try {
      this.#websocket(req, socket, head);
    } catch (error) {
      this.deps.logger.error({ event: EVENT.internalError, err: error }, 'websocket upgrade failed');
      socket.end(errorResponse(500, randomUUID()));
    }
  }

  /** Holds the upgrade (and whatever the client sends meanwhile) until the earlier response is out. */
  #afterEarlier(earlier: ServerResponse, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const chunks = [head];
    const keep = (chunk: Buffer): number => chunks.push(chunk);
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

  /** Closes every tunnel whose route is gone or changed, or whose endpoint left its service. */
  reconcile(snapshot: Snapshot): void {
    this.closeWhere((place) => movedIn(snapshot, place));
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

  #websocket(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const { metrics, logger } = this.deps;
    const generation = this.deps.current();
    const hs: Handshake = {
      requestId: acceptRequestId(req.headers['x-request-id']) ?? randomUUID(),
      started: performance.now(),
      accessLog: generation.snapshot.accessLog,
      path: '',
      route: '',
      service: '',
      side: '',
      colour: '',
      preview: false,
      legacy: false,
      endpoint: '',
      fault: undefined,
    };
    const answer = (status: number, response: string | Buffer): void => {
      client.end(response);
      this.#answered(hs, status);
    };

    if (this.#closing) return answer(503, errorResponse(503, hs.requestId));
    // RFC 6455 §4.1: the opening handshake is a GET with no content; a body would be read as frames.
    if (hasRequestBody(req)) return answer(400, errorResponse(400, hs.requestId));
    const plan = planRequest(generation, req, this.deps.guards);
    hs.path = plan.path;
    if (plan.kind === 'refuse') return answer(plan.status, errorResponse(plan.status, hs.requestId, plan.extraHeaders));
    hs.route = plan.route.name;
    // A `respond` route answers an upgrade as it answers the plain request: a kill switch holds for both.
    if (plan.kind === 'respond') return answer(plan.action.status, configuredResponse(plan.action, plan.extraHeaders));

    hs.service = plan.service.def.name;
    hs.side = plan.side;
    hs.colour = plan.colour;
    hs.preview = plan.preview;
    hs.legacy = plan.legacy;
    const endpoint = plan.service.pick();
    if (endpoint === undefined) {
      this.#judge(plan, true, performance.now() - hs.started);
      return answer(503, errorResponse(503, hs.requestId, plan.extraHeaders));
    }
    hs.endpoint = endpoint.origin;

    const snapshot = generation.snapshot;
    const headers = upstreamRequestHeaders(req, { peer: plan.peer, trusted: plan.trusted, host: plan.host, requestId: hs.requestId, hostOverride: plan.action.hostHeader, secret: snapshot.previewHeaders });
    if (plan.toggles !== undefined) headers.push('x-ficus-toggles', plan.toggles);
    headers.push('connection', 'Upgrade', 'upgrade', 'websocket');
    const path = endpoint.def.basePath + plan.action.rewrite(plan.path) + plan.query;
    // Assigned before any outcome can come: they are all reported from later events.
    let abort = (): void => undefined;
    abort = askUpstream(endpoint, path, headers, plan.service.def.timeouts, client, head, {
      upgraded: (res, socket, upstreamHead, early) => {
        this.#pending.delete(abort);
        plan.service.outlier.success(endpoint);
        this.#judge(plan, false, performance.now() - hs.started);
        this.#tunnel(hs, plan, endpoint, res, client, early, socket, upstreamHead);
      },
      refused: (res) => {
        this.#pending.delete(abort);
        const failed = (res.statusCode ?? 0) >= 500;
        if (failed) plan.service.outlier.failure(endpoint);
        else plan.service.outlier.success(endpoint);
        this.#judge(plan, failed, performance.now() - hs.started);
        this.#relayRefusal(hs, plan, res, client);
      },
      failed: (fault) => {
        this.#pending.delete(abort);
        hs.fault = fault.kind;
        if (fault.upstream) {
          metrics.upstreamErrors.labels(hs.service, fault.kind).inc();
          logger.debug({ event: EVENT.upstreamError, service: hs.service, endpoint: endpoint.origin, kind: fault.kind, message: fault.message });
          plan.service.outlier.failure(endpoint);
          this.#judge(plan, true, performance.now() - hs.started);
        }
        if (fault.status === 0 || client.destroyed) {
          client.destroy();
          this.#answered(hs, 0);
        } else answer(fault.status, errorResponse(fault.status, hs.requestId, plan.extraHeaders));
      },
    });
    this.#pending.add(abort);
  }

  /** The upstream declined the upgrade: its answer goes to the client, and the connection closes. */
  #relayRefusal(hs: Handshake, plan: ForwardPlan, res: IncomingMessage, client: Duplex): void {
    const status = res.statusCode ?? 502;
    const fields = clientResponseHeaders(res.rawHeaders);
    fields.push('connection', 'close');
    if (plan.extraHeaders !== undefined) fields.push(...plan.extraHeaders);
    client.write(responseHead(status, fields, res.statusMessage));
    this.#relaying.add(client);
    let counted = false;
    const count = (code: number): void => {
      if (counted) return;
      counted = true;
      this.#answered(hs, code);
    };
    // An answer cut short, on either side, is no answer: the client sees the connection drop.
    res.on('error', () => client.destroy());
    res.on('aborted', () => client.destroy());
    res.on('end', () => count(status));
    client.on('close', () => {
      this.#relaying.delete(client);
      res.destroy();
      count(0);
    });
    res.pipe(client);
  }

  #tunnel(hs: Handshake, plan: ForwardPlan, endpoint: Endpoint, res: IncomingMessage, client: Duplex, head: Buffer, upstream: Duplex, upstreamHead: Buffer): void {
    upstream.on('error', () => upstream.destroy());
    if (client.destroyed) {
      upstream.destroy();
      return this.#answered(hs, 0);
    }
    // Only the upgrade's own Connection and Upgrade pass: every other hop-by-hop field stops here.
    const fields = ['Connection', 'Upgrade', 'Upgrade', res.headers.upgrade ?? 'websocket'];
    const passed = clientResponseHeaders(res.rawHeaders);
    // What follows the 101 is frames, never a body.
    dropContentLength(passed);
    fields.push(...passed);
    if (res.headers['x-request-id'] === undefined) fields.push('x-request-id', hs.requestId);
    if (plan.extraHeaders !== undefined) fields.push(...plan.extraHeaders);
    client.write(responseHead(101, fields, 'Switching Protocols'));
    this.#answered(hs, 101);

    const { metrics } = this.deps;
    const gauge = metrics.websocketTunnels.labels(hs.route, hs.service);
    gauge.inc();
    const place = { route: plan.route.name, fingerprint: plan.route.fingerprint, side: plan.side, service: hs.service, colour: plan.colour, origin: endpoint.origin };
    // An open tunnel is load on its endpoint for as long as it lasts: least-request sees it.
    endpoint.inflight++;
    const tunnel = new Tunnel(place, client, upstream, () => {
      endpoint.inflight--;
      gauge.dec();
      this.#open.delete(tunnel);
      this.#log(hs, 101, { durationMs: round(performance.now() - hs.started), bytesIn: tunnel.bytesIn, bytesOut: tunnel.bytesOut });
      if (this.#open.size === 0) this.#onEmpty?.();
    });
    this.#open.add(tunnel);
    tunnel.start(head, upstreamHead);
    if (this.#closing) tunnel.shutdown(0, CLOSE_GRACE_MS);
    // A reload while the upstream weighed the upgrade was reconciled without this tunnel.
    else if (movedIn(this.deps.current().snapshot, place)) tunnel.shutdown(CLOSE_GRACE_MS, RECONCILE_DEADLINE_MS);
  }

  /** Counts the upgrade request once its answer is decided; a tunnel logs when it ends instead. */
  #answered(hs: Handshake, status: number): void {
    const seconds = (performance.now() - hs.started) / 1000;
    this.deps.metrics.recordRequest(hs.route, hs.service, hs.colour, hs.service ? hs.side : '', status, seconds, hs.legacy);
    if (status !== 101) this.#log(hs, status, { durationMs: round(seconds * 1000) });
  }

  #log(hs: Handshake, status: number, extra: Record<string, number>): void {
    if (!hs.accessLog) return;
    this.deps.logger.info({
      event: EVENT.access,
      upgrade: 'websocket',
      requestId: hs.requestId,
      method: 'GET',
      path: hs.path,
      route: hs.route,
      service: hs.service,
      side: hs.service ? hs.side : undefined,
      color: hs.colour || undefined,
      preview: hs.preview || undefined,
      endpoint: hs.endpoint,
      status,
      fault: hs.fault,
      ...extra,
    });
  }

  /** The canary windows and the cutover guard count a handshake like a request: 101 healthy, 5xx or a fault failed. */
  #judge(plan: ForwardPlan, failed: boolean, ms: number): void {
    plan.canary?.record(plan.side, failed, ms);
    if (plan.guard === undefined) return;
    const decision = plan.guard.record(plan.colour as Colour, failed, ms);
    if (decision.kind !== 'none') this.deps.guards?.onEvent?.(decision);
  }
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
