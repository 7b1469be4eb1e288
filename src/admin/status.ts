import { looksSecret, REDACTED } from '../config/secret.js';
import type { Colour, ServiceDef, ShadowDef } from '../config/snapshot.js';
import type { Guard } from '../rollout/guard.js';
import type { Guards } from '../rollout/guards.js';
import type { ConfigStore } from '../config/store.js';
import type { Clock } from '../observe/clock.js';
import type { ShareReading } from '../observe/share-window.js';
import type { CanaryRuntime } from '../rollout/canary.js';
import type { ShadowTally } from '../shadow/mirror.js';
import type { ServiceRuntime } from '../upstream/service.js';
import { migrationSummary, routeLedger, toggleLedger } from './ledger.js';

/**
 * The `/status` document: what is running, how it got there, the health of every endpoint, and
 * the migration ledger (where each route stands, colours, toggles, the legacy share).
 */
export function statusDocument(store: ConfigStore, clock: Clock, ready: boolean, share?: ShareReading, guards?: Guards, shadows?: Shadows) {
  const { snapshot, services, canaries } = store.current;
  const last = store.lastReload;
  const now = clock.now();
  return {
    ready,
    config: {
      file: snapshot.file,
      hash: snapshot.hash,
      loadedAt: snapshot.loadedAt.toISOString(),
      lastReload: {
        at: last.at.toISOString(),
        trigger: last.trigger,
        result: last.result,
        hashBefore: last.hashBefore,
        hashAfter: last.hashAfter,
        errors: last.issues.map((i) => ({ file: i.file, line: i.line, col: i.col, path: i.path, message: i.message })),
      },
    },
    migration: migrationSummary(snapshot, share),
    routes: snapshot.routes.map((route) => {
      const canary = canaries[route.index];
      return {
        name: route.name,
        match: route.conditions.map((c) => c.describe),
        ...(route.action.kind === 'proxy'
          ? { service: route.action.service, ...routeLedger(route, snapshot, canary), ...(canary ? canaryStatus(canary) : {}), ...shadowStatus(route.name, route.action.shadow, shadows) }
          : { respond: route.action.status }),
      };
    }),
    toggles: toggleLedger(snapshot),
    services: [...services.values()].map((service) => ({
      name: service.def.name,
      legacy: service.def.legacy,
      balance: service.def.balance,
      ...coloursOf(service.def, guards?.get(service.def.name)),
      endpoints: service.colours
        ? [...endpointsOf(service.colours.blue, now, 'blue'), ...endpointsOf(service.colours.green, now, 'green')]
        : endpointsOf(service, now, undefined),
    })),
  };
}

/** Where the shadow's tallies come from (the running proxy's mirror). */
export interface Shadows {
  tally(route: string): ShadowTally | undefined;
}

/** A shadowed route's copies: the share copied, and with `compare` what the comparisons found. */
function shadowStatus(route: string, def: ShadowDef | undefined, shadows: Shadows | undefined) {
  if (def === undefined) return {};
  const tally = shadows?.tally(route);
  return {
    shadowPercent: def.percent,
    ...(def.compare ? { comparisons: tally?.compared ?? { match: 0, mismatch: 0, error: 0, skipped: 0 } } : {}),
    shadowDropped: tally?.dropped ?? 0,
  };
}

/**
 * A canary route's live state (SPEC §6): `state` and the effective `weight`, the file's weight,
 * the step reached, the reason and numbers of the last decision, and the last verdict.
 */
export function canaryStatus(canary: CanaryRuntime) {
  const record = canary.toRecord();
  const { def } = canary;
  const verdict = canary.lastVerdict;
  return {
    canary: def.service,
    state: record.state,
    weight: record.weight,
    fileWeight: def.weight,
    ...(def.steps !== undefined ? { steps: def.steps, step: record.step + 1 } : {}),
    ...(record.ejectedReason !== undefined ? { reason: record.ejectedReason } : {}),
    message: record.message,
    since: new Date(record.since).toISOString(),
    ...(record.state === 'promoted' ? { action: `make ${def.service} the route's "to" (and remove the canary block)` } : {}),
    verdict: verdict === undefined ? null : { outcome: verdict.outcome, message: verdict.message, at: new Date(verdict.at).toISOString() },
  };
}

function endpointsOf(runtime: ServiceRuntime, now: number, color: Colour | undefined) {
  const panic = runtime.panicking(now);
  return runtime.endpoints.map((e) => ({
    url: e.origin + e.def.basePath,
    ...(color !== undefined ? { color } : {}),
    up: e.isUp(now),
    ...(e.healthy ? {} : { healthCheck: 'failing' }),
    // Failing its checks, yet served: no endpoint of its group passes them (panic routing).
    ...(panic && !e.healthy && e.ejectedUntil <= now ? { panic: true } : {}),
    inflight: e.inflight,
    consecutiveFailures: e.consecutiveFailures,
    timesEjected: e.timesEjected,
    ...(e.ejectedUntil > now ? { ejectedUntil: new Date(e.ejectedUntil).toISOString() } : {}),
  }));
}

/**
 * A blue/green service's active colour and state: without a guard a pair is always `stable`, and
 * the colour serving is the file's. Whether a preview door is open is shown, never its token.
 */
function coloursOf(def: ServiceDef, guard: Guard | undefined) {
  const colours = def.colours;
  if (colours === undefined) return {};
  const preview = colours.preview !== undefined && colours.preview.token !== '';
  if (guard === undefined) return { active: colours.active, configuredActive: colours.active, state: 'stable' as const, preview };
  // `active` is the colour serving live traffic; after a rollback the file still names the other.
  return { ...guard.status(), configuredActive: colours.active, preview };
}

/** The effective configuration with every secret replaced, for `/config`. */
export function redactedConfig(store: ConfigStore): unknown {
  const source = structuredClone(store.current.snapshot.source);
  // The secrets ficus knows by name are blanked whatever the names below catch.
  if (source.admin.token) source.admin.token = REDACTED;
  for (const service of Object.values(source.services)) if (service.preview?.token) service.preview.token = REDACTED;
  // User ids are personal data, which the admin's GETs (open without a token) must not list,
  // as the access log never does; how many there are is what an operator checks here.
  for (const group of [...Object.values(source.cohorts ?? {}), ...Object.values(source.toggles ?? {})]) {
    if (group.users !== undefined) group.users = group.users.map(() => REDACTED);
  }
  return redactDeep(redactFromEnv(source, store.current.snapshot.fromEnv, ''), false);
}

/**
 * Where an address is read from the environment (`port: ${env:PORT}`, a URL), it is shown: it is
 * no secret, and /config is where an operator checks it. Named by their whole path: a header or
 * query condition that happens to be called `host` or `url` is a value like any other.
 */
const SHOWN_FROM_ENV = /^(?:(?:listen|admin)\.(?:host|port)|services\..+\.(?:url|urls\.\d+)|routes\.\d+\.(?:match|rewrite)\.host|auditLog|stateFile)$/;

/** Every other string the file took from `${env:…}`: the operator kept it out of the file for a reason. */
function redactFromEnv(value: unknown, fromEnv: ReadonlySet<string>, path: string): unknown {
  if (fromEnv.size === 0) return value;
  if (Array.isArray(value)) return value.map((item, i) => redactFromEnv(item, fromEnv, path === '' ? `${i}` : `${path}.${i}`));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) out[key] = redactFromEnv(inner, fromEnv, path === '' ? key : `${path}.${key}`);
    return out;
  }
  return typeof value === 'string' && value !== '' && fromEnv.has(path) && !SHOWN_FROM_ENV.test(path) ? REDACTED : value;
}

/**
 * Under a secret-looking key, every non-empty value is blanked, however nested (a header
 * matched by `{ regex }`); so is the `value` beside a secret-looking `name` (a cohort's header).
 */
function redactDeep(value: unknown, secret: boolean): unknown {
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, secret));
  if (value && typeof value === 'object') {
    const fields = value as Record<string, unknown>;
    const named = typeof fields.name === 'string' && looksSecret(fields.name);
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(fields)) out[key] = redactDeep(inner, secret || looksSecret(key) || (named && key === 'value'));
    return out;
  }
  return secret && typeof value === 'string' && value !== '' ? REDACTED : value;
}
