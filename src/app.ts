import { once } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from './admin/server.js';
import { formatIssue } from './config/issues.js';
import { ConfigStore, runtimesOf, type ReloadReport, type ReloadTrigger } from './config/store.js';
import { watchConfig, type WatchOptions } from './config/watch.js';
import { announceCanary, announceCutover, announceGuard, announceHealth, announceService } from './observe/announce.js';
import { AuditLog } from './observe/audit.js';
import { systemClock, systemRandom, type Clock, type Random } from './observe/clock.js';
import { createLogger, EVENT, flushedWithin, type Logger } from './observe/log.js';
import { Metrics, type EndpointState } from './observe/metrics.js';
import { closeAfterCurrent } from './proxy/connection-turns.js';
import { OpenRequests } from './proxy/open-requests.js';
import { createRequestHandler, type HandlerDeps } from './proxy/handler.js';
import { createEdgeServer } from './proxy/server.js';
import { Tunnels } from './proxy/tunnel.js';
import type { CanaryEvents } from './rollout/canary.js';
import { AnalysisLoop } from './rollout/loop.js';
import type { GuardEvent } from './rollout/guard.js';
import { Guards } from './rollout/guards.js';
import { RuntimeState } from './rollout/runtime-state.js';
import { liveColours } from './upstream/bluegreen.js';
import { HealthChecks } from './upstream/health.js';
import { ShadowMirror } from './shadow/mirror.js';

export interface AppOptions {
  configFile: string;
  logger?: Logger;
  clock?: Clock;
  random?: Random;
  env?: NodeJS.ProcessEnv;
  /** Watch the file for changes (default on); options tune debounce and polling. */
  watch?: boolean | WatchOptions;
}

export interface RunningApp {
  readonly proxyUrl: string;
  readonly adminUrl: string;
  readonly store: ConfigStore;
  readonly metrics: Metrics;
  /** The audit file named by the running config; `settled()` waits for records in flight. */
  readonly audit: AuditLog;
  reload(trigger: ReloadTrigger): Promise<ReloadReport>;
  /** SIGTERM behaviour: not ready, stop accepting, finish in flight (≤ drainTimeout), close. */
  drain(): Promise<void>;
}

/** Wires the modules together: config store → edge listener + admin listener + watcher. */
export async function startApp(options: AppOptions): Promise<RunningApp> {
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? systemClock;
  const random = options.random ?? systemRandom;
  // The legacy-share window reads the same clock as everything else, so tests can advance it.
  const metrics = new Metrics(clock);
  // Every decision of the analysis is logged with its numbers, counted, shown and audited.
  // Set once the edge listener exists; decisions taken before that have no tunnel to move.
  let tunnels: Tunnels | undefined;
  const guards = new Guards(clock);
  const state = new RuntimeState(() => store.current, guards, logger);
  const canaryEvents: CanaryEvents = {
    changed: (canary, change) => {
      announceCanary(canary, change, { logger, metrics, audit, hash: () => store.current.snapshot.hash });
      if (change.kind === 'ejection') tunnels?.closeWhere((t) => t.route === canary.route && t.side === 'canary');
      state.save();
    },
  };
  const store = await ConfigStore.open(options.configFile, {
    canaryEvents,
    clock,
    random,
    env: options.env,
    serviceEvents: (service, colour) => announceService(service, colour, logger),
  });
  const first = store.current.snapshot;
  const audit = new AuditLog(() => store.current.snapshot.auditLog, {
    clock,
    onError: (error, path, kind) =>
      logger.error({ event: EVENT.auditWriteFailed, path, kind, code: error.code }, `cannot append to the audit log ${path} (${error.code ?? error.message}); traffic is not affected`),
  });

  const onGuardEvent = (event: GuardEvent) => {
    announceGuard(event, { logger, metrics, audit, hash: () => store.current.snapshot.hash });
    if (event.kind === 'rollback') tunnels?.closeWhere((t) => t.service === event.service && t.colour === event.from);
    state.save();
  };
  const startWatches = await state.restore();
  metrics.configLoaded(first.hash);
  metrics.lastReloadSuccess.set(1);
  metrics.watchEndpoints(() => endpointStates(store, clock.now()));
  metrics.publishCanaries(store.current.canaries);
  const health = new HealthChecks(announceHealth(logger));
  const analysis = new AnalysisLoop(() => store.current.canaries, clock, undefined, (error, canary) =>
    logger.error({ event: EVENT.internalError, route: canary.route, err: error }, `the analysis of canary ${canary.route} failed`),
  );

  let ready = true;
  const inflight: HandlerDeps['inflight'] = { count: 0, draining: false, open: new OpenRequests() };
  metrics.watchInFlight(() => inflight.count);
  const current = () => store.current;
  const guarded = { get: (name: string) => guards.get(name), onEvent: onGuardEvent };
  const shadow = new ShadowMirror({ metrics, logger, random, clock, guards: guarded });
  const edge = createEdgeServer(() => store.current.snapshot.limits, createRequestHandler({ current, metrics, logger, inflight, guards: guarded, shadow }), (status) => metrics.edgeRefused(status));
  const upgrades = (tunnels = new Tunnels({ current, metrics, logger, guards: guarded, replay: (socket) => edge.emit('connection', socket) }));
  edge.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrades.handle(req, socket, head));

  const guardOf = (service: string) => guards.get(service);
  const reload = async (trigger: ReloadTrigger): Promise<ReloadReport> => {
    const liveBefore = liveColours(store.current.snapshot, guardOf);
    const report = await store.reload(trigger);
    // The gauge mirrors what /status says: a file put back to the running content recovers it.
    metrics.lastReloadSuccess.set(store.lastReload.result === 'failure' ? 0 : 1);
    if (report.result === 'unchanged') {
      // File events fire for any write in the directory; only asked-for reloads are counted.
      if (trigger !== 'file') {
        metrics.reloads.labels('unchanged').inc();
        logger.info({ event: EVENT.reloadUnchanged, trigger, hash: report.hashAfter }, 'configuration unchanged');
      }
      return report;
    }
    metrics.reloads.labels(report.result).inc();
    if (report.result === 'failure') {
      const errors = report.issues.map(formatIssue);
      // Not awaited: neither the reload nor any request waits on the audit file.
      void audit.record('reload', { trigger, result: 'failure', hashBefore: report.hashBefore, hashAfter: report.hashAfter, errors });
      logger.error(
        { event: EVENT.reloadFailed, trigger, hashBefore: report.hashBefore, hashAfter: report.hashAfter, errors },
        `configuration rejected, still running ${report.hashBefore}:\n${errors.join('\n')}`,
      );
      return report;
    }
    const now = store.current.snapshot;
    void audit.record('reload', { trigger, result: 'success', hashBefore: report.hashBefore, hashAfter: report.hashAfter });
    upgrades.reconcile(now);
    health.reconcile(store.current);
    for (const watch of guards.reconcile(now)) logger.info({ event: EVENT.guardWatching, ...watch }, `${watch.service}: ${watch.message}`);
    // A cutover is live traffic changing colour, whether the file's `active` moved or a guard
    // re-watched a fixed colour after a rollback; a file put back to the colour already serving is none.
    for (const [service, to] of liveColours(now, guardOf)) {
      const from = liveBefore.get(service);
      if (from === undefined || from === to) continue;
      announceCutover(service, from, to, trigger, now.hash, { logger, audit });
    }
    state.save();
    metrics.configLoaded(now.hash);
    metrics.publishCanaries(store.current.canaries);
    shadow.retainRoutes(new Set(now.routes.map((route) => route.name)));
    analysis.reschedule();
    logger.info({ event: EVENT.reloaded, trigger, hashBefore: report.hashBefore, hashAfter: report.hashAfter }, 'configuration reloaded');
    // The admin token is read per request and needs no restart; addresses are bound once, and
    // Node's parser takes its header size limit only when the listener is made.
    const needRestart = [
      ...(sameAddress(now.listen, first.listen) ? [] : ['listen']),
      ...(sameAddress(now.admin, first.admin) ? [] : ['admin']),
      ...(now.limits.maxHeaderBytes === first.limits.maxHeaderBytes ? [] : ['limits.maxHeaderBytes']),
    ];
    if (needRestart.length > 0) logger.warn({ event: EVENT.restartNeeded, keys: needRestart }, `${needRestart.join(', ')}: changes take effect after a restart`);
    // Compared with what the listener has now, not with the first file: a value put back must apply too.
    edge.headersTimeout = now.limits.headerTimeoutMs;
    return report;
  };

  const admin = createAdminServer({ store, metrics, clock, isReady: () => ready, reload, guards, shadows: shadow, persisted: () => Promise.all([state.settled(), audit.settled()]) });
  try {
    await listen(edge, first.listen.port, first.listen.host, 'listen');
    await listen(admin, first.admin.port, first.admin.host, 'admin');
  } catch (error) {
    edge.close();
    admin.close();
    await store.close();
    throw error;
  }

  // The start's record says which configuration was in force from when (a readmission restored
  // from the state file may come just before it).
  void audit.record('reload', { trigger: 'start', result: 'success', hashBefore: null, hashAfter: first.hash });
  // A guarded colour changed while ficus was down is a cutover of live traffic, said as a reload says one.
  for (const watch of startWatches) {
    logger.info({ event: EVENT.guardWatching, ...watch }, `${watch.service}: ${watch.message}`);
    announceCutover(watch.service, watch.from, watch.to, 'start', first.hash, { logger, audit });
  }
  analysis.start();
  guards.start(onGuardEvent);
  health.reconcile(store.current);

  const watchOptions = options.watch ?? true;
  // A reload reports a bad file itself; what rejects here is a bug of ficus's, logged, never fatal.
  const reloadFromFile = () => void reload('file').catch((error: unknown) => logger.error({ event: EVENT.internalError, err: error }, 'the reload failed'));
  const stopWatching = watchOptions === false ? () => undefined : watchConfig(options.configFile, reloadFromFile, watchOptions === true ? {} : watchOptions);
  // A change made after the file was read above and before the watch began raised no event:
  // compared by hash, so an unchanged file costs one read.
  if (watchOptions !== false) reloadFromFile();

  const proxyUrl = urlOf(edge);
  const adminUrl = urlOf(admin);
  logger.info({ event: EVENT.started, proxy: proxyUrl, admin: adminUrl, config: options.configFile, hash: first.hash }, `ficus listening on ${proxyUrl} (admin ${adminUrl})`);

  // Operators wait for this line; the buffered log destination would otherwise hold it back.
  logger.flush();

  let draining: Promise<void> | undefined;
  const drain = () => {
    draining ??= (async () => {
      ready = false;
      inflight.draining = true;
      stopWatching();
      analysis.stop();
      guards.stop();
      health.stop();
      const timeoutMs = store.current.snapshot.drainTimeoutMs;
      const deadline = performance.now() + timeoutMs;
      if (inflight.open !== undefined) closeAfterCurrent(inflight.open);
      logger.info({ event: EVENT.draining, inflight: inflight.count, timeoutMs }, 'draining');
      const closed = once(edge, 'close');
      edge.close();
      edge.closeIdleConnections();
      // WebSocket tunnels never end by themselves: they are asked to close while requests finish.
      const tunnelsClosed = upgrades.close(timeoutMs);
      let idle = inflight.count === 0 || (await idleWithin(inflight, timeoutMs));
      await tunnelsClosed;
      // Requests read on kept-alive connections while the tunnels were closing are in flight too.
      while (idle && inflight.count > 0) idle = await idleWithin(inflight, Math.max(0, deadline - performance.now()));
      if (!idle) {
        inflight.expired = true;
        // A response cut here must not look complete: each request resets a body that ends with
        // the connection (an HTTP/1.0 client's) rather than leave it to the close below.
        for (const link of inflight.open?.links() ?? []) link.cutAtDeadline();
        logger.warn({ event: EVENT.drainExpired, inflight: inflight.count, timeoutMs }, `drain timeout: cutting ${inflight.count} request(s) still in flight`);
      }
      // Keep-alive connections that finished their last response are idle now; nothing else is.
      edge.closeAllConnections();
      await closed;
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      await store.close();
      // The last records must not be lost at exit, but a hung audit disk must not hold the exit either.
      await settledWithin(audit, EXIT_WRITE_WAIT_MS);
      await settledWithin(state, EXIT_WRITE_WAIT_MS);
      logger.info({ event: EVENT.stopped }, 'stopped');
      // Nothing on its way to stdout at exit, where no write's end is heard: a line half written.
      await flushedWithin(logger, EXIT_WRITE_WAIT_MS);
    })();
    return draining;
  };

  return { proxyUrl, adminUrl, store, metrics, audit, reload, drain };
}

function sameAddress(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  return a.host === b.host && a.port === b.port;
}

const EXIT_WRITE_WAIT_MS = 2_000;

/** Waits for pending writes (audit records, the state file) at most `ms`: a hung disk must not hold the exit. */
function settledWithin(writer: { settled(): Promise<unknown> }, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([writer.settled().then(() => undefined), expired]).finally(() => clearTimeout(timer));
}

/** Resolves true when no request is in flight any more, false when `timeoutMs` passed first. */
function idleWithin(inflight: HandlerDeps['inflight'], timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      inflight.onIdle = undefined;
      resolve(false);
    }, timeoutMs);
    inflight.onIdle = () => {
      clearTimeout(timer);
      inflight.onIdle = undefined;
      resolve(true);
    };
  });
}

function* endpointStates(store: ConfigStore, now: number): Iterable<EndpointState> {
  // Colours carry their service's name, so a blue/green service's endpoints are listed under it.
  for (const runtime of runtimesOf(store.current)) for (const endpoint of runtime.endpoints) yield [runtime.def.name, endpoint.origin + endpoint.def.basePath, endpoint.isUp(now)];
}

async function listen(server: Server, port: number, host: string, key: 'listen' | 'admin'): Promise<void> {
  // An IPv6 address may be written bracketed, as in a URL; the socket wants it bare.
  server.listen(port, host.replace(/^\[(.*)\]$/, '$1'));
  // The error says which key of the file named the address, and the address as written.
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(Object.assign(error as Error, { key, host, port })))]);
}

function urlOf(server: Server): string {
  const { address, port } = server.address() as AddressInfo;
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
}
