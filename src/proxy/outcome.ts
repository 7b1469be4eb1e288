import type { Colour } from '../config/snapshot.js';
import { EVENT, type Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { GuardEvent } from '../rollout/guard.js';
import type { Endpoint } from '../upstream/endpoint.js';
import type { ServiceRuntime } from '../upstream/service.js';
import type { Fault } from './errors.js';
import type { ForwardPlan } from './plan.js';

/**
 * What one exchange says of the service (SPEC §1.4): failed on a 5xx or an upstream fault
 * (connect, reset, timeout, protocol), healthy otherwise; undefined when it says nothing — a
 * client's abort or error, or a pool closed under a reload. Outlier detection, the canary
 * windows and the cutover guard all count by this one rule, for requests and upgrades alike.
 */
export function serviceFailed(status: number, fault: Fault | undefined): boolean | undefined {
  if (fault === undefined) return status >= 500;
  return fault.upstream ? true : undefined;
}

/**
 * An endpoint's upstream faults are logged at warn once a minute, the others at debug: why
 * requests fail (a certificate refused, connections reset) must reach an operator at the
 * default level, as nginx's error log tells it, without a line per request.
 */
const WARN_EVERY_MS = 60_000;
const warnedAt = new WeakMap<Endpoint, number>();

/** Feeds an exchange's verdict to outlier detection, and an upstream fault to its metric and log line. */
export function countOutcome(service: ServiceRuntime, endpoint: Endpoint, failed: boolean | undefined, fault: Fault | undefined, deps: { metrics: Metrics; logger: Logger }): void {
  if (failed === true) service.outlier.failure(endpoint);
  else if (failed === false) service.outlier.success(endpoint);
  if (fault?.upstream !== true) return;
  deps.metrics.upstreamErrors.labels(service.def.name, fault.kind).inc();
  const now = performance.now();
  const last = warnedAt.get(endpoint);
  const warn = last === undefined || now - last >= WARN_EVERY_MS;
  if (warn) warnedAt.set(endpoint, now);
  deps.logger[warn ? 'warn' : 'debug']({ event: EVENT.upstreamError, service: service.def.name, endpoint: endpoint.origin, kind: fault.kind, message: fault.message });
}

/** The canary's window and the cutover guard hear the verdict; a guard decision goes to `onEvent`. */
export function judge(plan: Pick<ForwardPlan, 'canary' | 'guard' | 'side' | 'colour' | 'preview'>, failed: boolean, ms: number, onEvent: ((event: GuardEvent) => void) | undefined): void {
  // A preview reaches the colour that serves no live traffic: it says nothing of either side of
  // the split, and must neither eject, promote nor step a canary (the guard keeps it apart by colour).
  if (!plan.preview) plan.canary?.record(plan.side, failed, ms);
  if (plan.guard === undefined) return;
  const decision = plan.guard.record(plan.colour as Colour, failed, ms);
  if (decision.kind !== 'none') onEvent?.(decision);
}
