import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from './admin/server.js';
import { formatIssue } from './config/issues.js';
import { ConfigStore, type ReloadReport, type ReloadTrigger } from './config/store.js';
import { watchConfig, type WatchOptions } from './config/watch.js';
import { systemClock, systemRandom, type Clock, type Random } from './observe/clock.js';
import { createLogger, EVENT, type Logger } from './observe/log.js';
import { Metrics } from './observe/metrics.js';
import { createRequestHandler, type HandlerDeps } from './proxy/handler.js';
import { createEdgeServer } from './proxy/server.js';

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
  reload(trigger: ReloadTrigger): Promise<ReloadReport>;
  /** SIGTERM behaviour: not ready, stop accepting, finish in flight (≤ drainTimeout), close. */
  drain(): Promise<void>;
}

/** Wires the modules together: config store → edge listener + admin listener + watcher. */
export async function startApp(options: AppOptions): Promise<RunningApp> {
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? systemClock;
  const metrics = new Metrics();
  const store = await ConfigStore.open(options.configFile, {
    clock,
    random: options.random ?? systemRandom,
    env: options.env,
    outlierEvents: (service) => ({
      ejected(endpoint, durationMs) {
        metrics.endpointUp.labels(service, endpoint.origin).set(0);
        logger.warn({ event: EVENT.endpointEjected, service, endpoint: endpoint.origin, durationMs, timesEjected: endpoint.timesEjected }, 'endpoint ejected after consecutive failures');
      },
      returned(endpoint) {
        metrics.endpointUp.labels(service, endpoint.origin).set(1);
        logger.info({ event: EVENT.endpointReturned, service, endpoint: endpoint.origin }, 'endpoint returned to service');
      },
    }),
  });
  const first = store.current.snapshot;
  metrics.configLoaded(first.hash);
  metrics.lastReloadSuccess.set(1);
  publishEndpoints(store, metrics, clock);

  let ready = true;
  const inflight: HandlerDeps['inflight'] = { count: 0, draining: false };
  const edge = createEdgeServer(first.limits, createRequestHandler({ current: () => store.current, metrics, logger, inflight }));

  const reload = async (trigger: ReloadTrigger): Promise<ReloadReport> => {
    const report = await store.reload(trigger);
    if (report.result === 'unchanged') {
      if (trigger !== 'file') metrics.reloads.labels('unchanged').inc();
      return report;
    }
    metrics.reloads.labels(report.result).inc();
    metrics.lastReloadSuccess.set(report.result === 'success' ? 1 : 0);
    if (report.result === 'failure') {
      logger.error(
        { event: EVENT.reloadFailed, trigger, hash: report.hashAfter, errors: report.issues.map(formatIssue) },
        `configuration rejected, still running ${report.hashBefore}:\n${report.issues.map(formatIssue).join('\n')}`,
      );
      return report;
    }
    const now = store.current.snapshot;
    metrics.configLoaded(now.hash);
    publishEndpoints(store, metrics, clock);
    logger.info({ event: EVENT.reloaded, trigger, hashBefore: report.hashBefore, hashAfter: report.hashAfter }, 'configuration reloaded');
    if (JSON.stringify(now.listen) !== JSON.stringify(first.listen) || JSON.stringify(now.admin) !== JSON.stringify(first.admin)) {
      logger.warn({ event: EVENT.restartNeeded }, 'listen/admin changes take effect after a restart');
    }
    if (now.limits.headerTimeoutMs !== first.limits.headerTimeoutMs) edge.headersTimeout = now.limits.headerTimeoutMs;
    return report;
  };

  const admin = createAdminServer({ store, metrics, clock, isReady: () => ready, reload });
  await listen(edge, first.listen.port, first.listen.host);
  try {
    await listen(admin, first.admin.port, first.admin.host);
  } catch (error) {
    edge.close();
    await store.close();
    throw error;
  }

  const watchOptions = options.watch ?? true;
  const stopWatching = watchOptions === false ? () => undefined : watchConfig(options.configFile, () => void reload('file'), watchOptions === true ? {} : watchOptions);

  const proxyUrl = urlOf(edge);
  const adminUrl = urlOf(admin);
  logger.info({ event: EVENT.started, proxy: proxyUrl, admin: adminUrl, config: options.configFile, hash: first.hash }, `ficus listening on ${proxyUrl} (admin ${adminUrl})`);

  let draining: Promise<void> | undefined;
  const drain = () => {
    draining ??= (async () => {
      ready = false;
      inflight.draining = true;
      stopWatching();
      logger.info({ event: EVENT.draining, inflight: inflight.count, timeoutMs: store.current.snapshot.drainTimeoutMs }, 'draining');
      const closed = once(edge, 'close');
      edge.close();
      edge.closeIdleConnections();
      if (inflight.count > 0) {
        const idle = new Promise<void>((resolve) => {
          inflight.onIdle = resolve;
        });
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, store.current.snapshot.drainTimeoutMs);
        });
        await Promise.race([idle, timeout]);
        clearTimeout(timer);
      }
      edge.closeAllConnections();
      await closed;
      admin.closeAllConnections();
      admin.close();
      await store.close();
      logger.info({ event: EVENT.stopped }, 'stopped');
      logger.flush();
    })();
    return draining;
  };

  return { proxyUrl, adminUrl, store, metrics, reload, drain };
}

function publishEndpoints(store: ConfigStore, metrics: Metrics, clock: Clock): void {
  metrics.endpointUp.reset();
  const now = clock.now();
  for (const service of store.current.services.values()) {
    for (const endpoint of service.endpoints) metrics.endpointUp.labels(service.def.name, endpoint.origin).set(endpoint.ejectedUntil > now ? 0 : 1);
  }
}

async function listen(server: Server, port: number, host: string): Promise<void> {
  server.listen(port, host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error))]);
}

function urlOf(server: Server): string {
  const { address, port } = server.address() as AddressInfo;
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
}
