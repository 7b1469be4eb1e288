import type { Colour } from '../config/snapshot.js';
import type { AuditLog } from './audit.js';
import { EVENT, type Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { CanaryChange, CanaryRuntime } from '../rollout/canary.js';
import type { GuardEvent } from '../rollout/guard.js';
import type { Endpoint } from '../upstream/endpoint.js';
import type { HealthEvents } from '../upstream/health.js';
import type { ServiceEvents } from '../upstream/service.js';

/**
 * How a runtime decision of the immune system is told: a log line with its numbers, a metric,
 * and an audit record (SPEC §5), each decision in one place so the three never disagree.
 * Endpoints taken out of service and returned are told by a log line; `endpoint_up` is read
 * from the endpoints at scrape time.
 */
export interface Announce {
  logger: Logger;
  metrics: Metrics;
  audit: AuditLog;
  hash: () => string;
}

const CANARY_EVENT = { ejection: EVENT.canaryEjected, readmission: EVENT.canaryReadmitted, step: EVENT.canaryStep, promotion: EVENT.canaryPromoted } as const;

export function announceCanary(canary: CanaryRuntime, change: CanaryChange, { logger, metrics, audit, hash }: Announce): void {
  const route = canary.route;
  const service = canary.def.service;
  const details = { route, canary: service, trigger: change.trigger, reason: change.reason, fromWeight: change.fromWeight, toWeight: change.toWeight, message: change.message };
  metrics.canaryWeight.labels(route).set(change.toWeight);
  const line = { event: CANARY_EVENT[change.kind], ...details };
  switch (change.kind) {
    case 'ejection':
      metrics.ejections.labels(route, change.reason ?? 'manual').inc();
      logger.warn(line, `canary ${service} of route ${route} ejected (${change.reason ?? 'manual'}): ${change.message}; its users go back to the stable side`);
      break;
    case 'readmission':
      logger.warn(line, `canary ${service} of route ${route} readmitted at ${change.toWeight} %: ${change.message}`);
      break;
    case 'step':
      logger.info(line, `canary ${service} of route ${route}: ${change.message}`);
      return;
    case 'promotion':
      logger.warn(line, `canary ${service} of route ${route} promoted: ${change.message}`);
      break;
  }
  void audit.record(change.kind, { ...details, hash: hash() });
}

export function announceGuard(event: GuardEvent, { logger, metrics, audit, hash }: Announce): void {
  if (event.kind === 'passed') {
    logger.info({ event: EVENT.guardPassed, service: event.service, color: event.colour, message: event.message }, `${event.service}: ${event.message}`);
    return;
  }
  metrics.rollbacks.labels(event.service).inc();
  const { requests, errorRate, p99Ms } = event.stats;
  const details = { service: event.service, from: event.from, to: event.to, reason: event.reason, message: event.message, requests, errorRate, p99Ms };
  logger.warn({ event: EVENT.rolledBack, ...details }, `${event.message}; live traffic is back on ${event.to} until the service changes in the file`);
  void audit.record('rollback', { ...details, hash: hash() });
}

/** Live traffic of a blue/green service changing colour: by a reload, a guard re-watching a fixed colour, or a start. */
export function announceCutover(service: string, from: Colour, to: Colour, trigger: string, hash: string, { logger, audit }: Pick<Announce, 'logger' | 'audit'>): void {
  logger.info({ event: EVENT.cutover, trigger, service, from, to }, `${service}: cutover from ${from} to ${to}`);
  void audit.record('cutover', { service, from, to, trigger, hash });
}

/** Passive outlier detection taking one service's endpoint out, and back; panic routing starting and ending. */
export function announceService(service: string, colour: Colour | undefined, logger: Logger): ServiceEvents {
  const group = colour === undefined ? `service ${service}` : `${colour} of service ${service}`;
  return {
    ejected(endpoint: Endpoint, durationMs: number) {
      logger.warn({ event: EVENT.endpointEjected, service, endpoint: endpoint.origin, durationMs, timesEjected: endpoint.timesEjected }, 'endpoint ejected after consecutive failures');
    },
    returned(endpoint: Endpoint) {
      logger.info({ event: EVENT.endpointReturned, service, endpoint: endpoint.origin }, 'endpoint returned to service');
    },
    panic(entered: boolean) {
      const color = colour === undefined ? {} : { color: colour };
      if (entered) logger.warn({ event: EVENT.panicEntered, service, ...color }, `no endpoint of ${group} both passes its health check and is free of ejection: those failing their checks serve anyway (panic routing)`);
      else logger.info({ event: EVENT.panicEnded, service, ...color }, `an endpoint of ${group} is in service again (its health check passes, and it is not ejected): panic routing ends`);
    },
  };
}

/** Health checks taking an endpoint out, and back. */
export function announceHealth(logger: Logger): HealthEvents {
  return {
    unhealthy(service, endpoint, problem, failures) {
      logger.warn({ event: EVENT.endpointUnhealthy, service, endpoint: endpoint.origin, problem }, `endpoint out of service: its health check failed ${failures === 1 ? 'its first time' : `${failures} times in a row`} (${problem})`);
    },
    healthy(service, endpoint) {
      logger.info({ event: EVENT.endpointHealthy, service, endpoint: endpoint.origin }, 'endpoint back in service: its health check passes');
    },
  };
}
