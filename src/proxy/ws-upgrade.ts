import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Colour } from '../config/snapshot.js';
import type { Generation } from '../config/store.js';
import { EVENT, type Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { GuardEvent } from '../rollout/guard.js';
import type { Endpoint } from '../upstream/endpoint.js';
import { acceptRequestId, clientResponseHeaders, dropContentLength, upstreamRequestHeaders } from './headers.js';
import { countOutcome, judge, serviceFailed } from './outcome.js';
import { planRequest, type ForwardPlan, type Guards } from './plan.js';
import { closeAfterLinger, configuredResponse, endWith, errorResponse, responseHead } from './raw-response.js';
import { hasRequestBody } from './request-body.js';
import { requestIds } from './request-id.js';
import { askUpstream } from './ws-handshake.js';
import { movedIn, Tunnel } from './ws-relay.js';

export interface TunnelDeps {
  current: () => Generation;
  metrics: Metrics;
  logger: Logger;
  /** Guarded cutovers: the handshake's outcome counts in the guard's window like a request's. */
  guards?: (Guards & { onEvent?(event: GuardEvent): void }) | undefined;
  /** Hands a socket back to the edge server, to be read as plain HTTP from its next byte. */
  replay: (socket: Duplex) => void;
}

/** What an upgrade needs of the registry of tunnels (tunnel.ts): drain reaches it through these. */
export interface UpgradeRegistry {
  /** Draining: new upgrades get 503, and a tunnel opened now is closed at once. */
  closing(): boolean;
  /** An upgrade waiting for its upstream's answer; `abort` ends it on drain. */
  waiting(abort: () => void): void;
  answered(abort: () => void): void;
  /** A client being sent an upstream's refusal; drain lets it have the answer until its deadline. */
  relaying(client: Duplex): void;
  relayed(client: Duplex): void;
  opened(tunnel: Tunnel): void;
  ended(tunnel: Tunnel): void;
}

/** How long a tunnel asked to close waits for both peers to answer its Close before ending the sockets. */
export const CLOSE_GRACE_MS = 1_000;
/** After a reload, an ejection or a rollback moved a tunnel: when whatever is left of it is destroyed. */
export const RECONCILE_DEADLINE_MS = 5_000;

/**
 * One WebSocket upgrade (SPEC §1.7): planned by the same decision as a plain request, asked of
 * one endpoint, then either tunnelled byte for byte or answered; counted in the metrics, the
 * canary windows and the cutover guard like a request, and logged once.
 */
export class WebSocketUpgrade {
  readonly #requestId: string;
  readonly #started = performance.now();
  readonly #accessLog: boolean;
  #path = '';
  #route = '';
  #service = '';
  #side = '';
  #colour: Colour | '' = '';
  #preview = false;
  #legacy = false;
  #endpoint = '';
  #fault: string | undefined;

  constructor(
    private readonly deps: TunnelDeps,
    private readonly registry: UpgradeRegistry,
    private readonly req: IncomingMessage,
    private readonly client: Duplex,
  ) {
    this.#requestId = acceptRequestId(req.headers['x-request-id']) ?? requestIds.next();
    this.#accessLog = deps.current().snapshot.accessLog;
  }

  start(head: Buffer): void {
    const { req, registry } = this;
    const generation = this.deps.current();

    if (registry.closing()) return this.#answer(503, errorResponse(503, this.#requestId));
    // RFC 6455 §4.1: the opening handshake is a GET with no content; a body would be read as frames.
    if (hasRequestBody(req)) return this.#answer(400, errorResponse(400, this.#requestId));
    const plan = planRequest(generation, req, this.deps.guards);
    this.#path = plan.path;
    if (plan.kind === 'refuse') return this.#answer(plan.status, errorResponse(plan.status, this.#requestId, plan.extraHeaders));
    this.#route = plan.route.name;
    // A `respond` route answers an upgrade as it answers the plain request: a kill switch holds for both.
    if (plan.kind === 'respond') return this.#answer(plan.action.status, configuredResponse(plan.action, plan.extraHeaders));

    this.#service = plan.service.def.name;
    this.#side = plan.side;
    this.#colour = plan.colour;
    this.#preview = plan.preview;
    this.#legacy = plan.legacy;
    const endpoint = plan.service.pick();
    if (endpoint === undefined) {
      this.#judge(plan, true);
      return this.#answer(503, errorResponse(503, this.#requestId, plan.extraHeaders));
    }
    this.#ask(plan, endpoint, head, false);
  }

  /** ficus's own answer instead of a tunnel: written, then the connection closes. */
  #answer(status: number, response: string | Buffer): void {
    endWith(this.client, response);
    this.#answered(status);
  }

  /**
   * Sends the handshake to `endpoint`. A connection that failed before anything was sent is
   * tried once more on another endpoint, as a plain GET is (SPEC §1.7): a handshake is a GET
   * without a body, and what the client sent meanwhile is kept for the second try.
   */
  #ask(plan: ForwardPlan, endpoint: Endpoint, head: Buffer, retried: boolean): void {
    const { req, client, registry } = this;
    this.#endpoint = endpoint.origin;
    const snapshot = this.deps.current().snapshot;
    const headers = upstreamRequestHeaders(req, { peer: plan.peer, trusted: plan.trusted, host: plan.host, requestId: this.#requestId, hostOverride: plan.action.hostHeader, secret: snapshot.previewHeaders });
    if (plan.toggles !== undefined) headers.push('x-ficus-toggles', plan.toggles);
    headers.push('connection', 'Upgrade', 'upgrade', 'websocket');
    const path = endpoint.def.basePath + plan.action.rewrite(plan.path) + plan.query;
    // Assigned before any outcome can come: they are all reported from later events.
    let abort = (): void => undefined;
    abort = askUpstream(endpoint, path, headers, plan.service.def.timeouts, client, head, {
      upgraded: (res, socket, upstreamHead, early) => {
        registry.answered(abort);
        countOutcome(plan.service, endpoint, false, undefined, this.deps);
        this.#judge(plan, false);
        this.#tunnel(plan, endpoint, res, early, socket, upstreamHead);
      },
      refused: (res) => {
        registry.answered(abort);
        const failed = serviceFailed(res.statusCode ?? 0, undefined) === true;
        countOutcome(plan.service, endpoint, failed, undefined, this.deps);
        this.#judge(plan, failed);
        this.#relayRefusal(plan, res);
      },
      failed: (fault, early) => {
        registry.answered(abort);
        const failed = serviceFailed(0, fault);
        countOutcome(plan.service, endpoint, failed, fault, this.deps);
        const next = !retried && fault.beforeSend && fault.upstream && !client.destroyed && !registry.closing() ? plan.service.pick(endpoint) : undefined;
        if (next !== undefined && next !== endpoint) return this.#ask(plan, next, early, true);
        // Only the attempt that decided the answer names its fault: a retry that succeeded has none.
        this.#fault = fault.kind;
        if (failed === true) this.#judge(plan, true);
        if (fault.status === 0 || client.destroyed) {
          client.destroy();
          this.#answered(0);
        } else this.#answer(fault.status, errorResponse(fault.status, this.#requestId, plan.extraHeaders));
      },
    });
    registry.waiting(abort);
  }

  /** The upstream declined the upgrade: its answer goes to the client, and the connection closes. */
  #relayRefusal(plan: ForwardPlan, res: IncomingMessage): void {
    const { client, registry } = this;
    const status = res.statusCode ?? 502;
    const fields = clientResponseHeaders(res.rawHeaders);
    fields.push('connection', 'close');
    if (plan.extraHeaders !== undefined) fields.push(...plan.extraHeaders);
    // Header values are bytes (latin1 strings in Node): written as UTF-8 they would be re-encoded.
    client.write(responseHead(status, fields, res.statusMessage), 'latin1');
    registry.relaying(client);
    let counted = false;
    const count = (code: number): void => {
      if (counted) return;
      counted = true;
      this.#answered(code);
    };
    // An answer cut short, on either side, is no answer: the client sees the connection drop.
    // An upstream that stalls mid-answer is cut after the service's idle timeout, as a plain
    // response is (undici's bodyTimeout). The relayed body has lost its chunking (it ends with
    // the connection): a plain close would make a cut one look complete, so it is a reset.
    const cut = (): void => {
      const socket = client as Partial<Socket> & Duplex;
      if (typeof socket.resetAndDestroy === 'function' && !client.destroyed) socket.resetAndDestroy();
      else client.destroy();
    };
    res.setTimeout(plan.service.def.timeouts.idleMs, () => {
      res.destroy();
      cut();
    });
    res.on('error', cut);
    res.on('aborted', cut);
    res.on('end', () => count(status));
    // Our answer is all out and our side closed: like ficus's own answers (endWith), a client
    // that keeps its side open is let go after a moment, or it would hold its socket for ever.
    client.once('finish', () => closeAfterLinger(client));
    // A client that takes none of the answer: cut after the same idle bound as a stalled upstream.
    (client as Partial<Socket>).setTimeout?.(plan.service.def.timeouts.idleMs, () => client.destroy());
    client.on('close', () => {
      registry.relayed(client);
      res.destroy();
      count(0);
    });
    res.pipe(client);
  }

  #tunnel(plan: ForwardPlan, endpoint: Endpoint, res: IncomingMessage, head: Buffer, upstream: Duplex, upstreamHead: Buffer): void {
    const { client, registry } = this;
    upstream.on('error', () => upstream.destroy());
    if (client.destroyed) {
      upstream.destroy();
      return this.#answered(0);
    }
    // Only the upgrade's own Connection and Upgrade pass: every other hop-by-hop field stops here.
    const fields = ['Connection', 'Upgrade', 'Upgrade', res.headers.upgrade ?? 'websocket'];
    const passed = clientResponseHeaders(res.rawHeaders);
    // What follows the 101 is frames, never a body.
    dropContentLength(passed);
    fields.push(...passed);
    if (res.headers['x-request-id'] === undefined) fields.push('x-request-id', this.#requestId);
    if (plan.extraHeaders !== undefined) fields.push(...plan.extraHeaders);
    client.write(responseHead(101, fields, 'Switching Protocols'), 'latin1');
    this.#answered(101);

    const gauge = this.deps.metrics.websocketTunnels.labels(this.#route, this.#service);
    gauge.inc();
    const place = { route: plan.route.name, fingerprint: plan.route.fingerprint, side: plan.side, service: this.#service, colour: plan.colour, preview: plan.preview, origin: endpoint.origin, basePath: endpoint.def.basePath, request: this.req, callerId: plan.callerId };
    // An open tunnel is load on its endpoint for as long as it lasts: least-request sees it.
    endpoint.inflight++;
    const tunnel = new Tunnel(place, client, upstream, () => {
      endpoint.inflight--;
      gauge.dec();
      this.#log(101, { durationMs: round(performance.now() - this.#started), bytesIn: tunnel.bytesIn, bytesOut: tunnel.bytesOut });
      registry.ended(tunnel);
    });
    registry.opened(tunnel);
    tunnel.start(head, upstreamHead);
    // Nothing either way for this long: a peer that vanished without a FIN (a lost network, a
    // NAT that forgot the flow) would otherwise hold both connections for ever. Anything sent to
    // the client passes its socket, so its timer sees both directions.
    const idle = this.deps.current().snapshot.limits.tunnelIdleTimeoutMs;
    (client as Partial<Socket>).setTimeout?.(idle, () => tunnel.shutdown(CLOSE_GRACE_MS, RECONCILE_DEADLINE_MS));
    if (registry.closing()) tunnel.shutdown(0, CLOSE_GRACE_MS);
    // A reload, an ejection or a rollback while the upstream weighed the upgrade closed the
    // tunnels it moved without this one, which would stay where its users were moved off.
    else if (movedIn(this.deps.current().snapshot, place) || this.#movedMeanwhile(plan)) tunnel.shutdown(CLOSE_GRACE_MS, RECONCILE_DEADLINE_MS);
  }

  /** The canary side this tunnel is on was ejected, or the colour it is on was rolled back from. */
  #movedMeanwhile(plan: ForwardPlan): boolean {
    if (plan.side === 'canary' && plan.canary?.state === 'ejected') return true;
    if (plan.guard?.state !== 'rolled-back' || plan.preview || plan.colour === '') return false;
    const fileActive = this.deps.current().snapshot.services.get(plan.service.def.name)?.colours?.active;
    return fileActive !== undefined && plan.colour !== plan.guard.effectiveActive(fileActive);
  }

  /** Counts the upgrade request once its answer is decided; a tunnel logs when it ends instead. */
  #answered(status: number): void {
    const seconds = (performance.now() - this.#started) / 1000;
    this.deps.metrics.recordRequest(this.#route, this.#service, this.#colour, this.#service ? this.#side : '', status, seconds, this.#legacy);
    if (status !== 101) this.#log(status, { durationMs: round(seconds * 1000) });
  }

  #log(status: number, extra: Record<string, number>): void {
    if (!this.#accessLog) return;
    this.deps.logger.info({
      event: EVENT.access,
      upgrade: 'websocket',
      requestId: this.#requestId,
      method: 'GET',
      path: this.#path,
      route: this.#route,
      service: this.#service,
      side: this.#service ? this.#side : undefined,
      color: this.#colour || undefined,
      preview: this.#preview || undefined,
      endpoint: this.#endpoint,
      status,
      fault: this.#fault,
      ...extra,
    });
  }

  /** The canary windows and the cutover guard count a handshake like a request: 101 healthy, 5xx or a fault failed. */
  #judge(plan: ForwardPlan, failed: boolean): void {
    judge(plan, failed, performance.now() - this.#started, (event) => this.deps.guards?.onEvent?.(event));
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
