import { compileMatch } from '../routing/match.js';
import { normalizePath } from '../routing/normalize.js';
import { compileTrust } from '../proxy/cidr.js';
import { durationOr } from './duration.js';
import type { RouteSpec, RoutesFile, ServiceSpec } from './schema.js';
import type { EndpointDef, RouteAction, RouteDef, ServiceDef, Snapshot, Timeouts } from './snapshot.js';

export const DEFAULTS = {
  connectMs: 5_000,
  responseMs: 30_000,
  idleMs: 60_000,
  headerTimeoutMs: 10_000,
  maxHeaderBytes: 16_384,
  maxHeaderCount: 100,
  drainTimeoutMs: 30_000,
  consecutiveFailures: 5,
} as const;

/** Builds the immutable snapshot from a file that `parseRoutes` has already validated. */
export function compile(source: RoutesFile, file: string, hash: string, loadedAt = new Date()): Snapshot {
  const defaults: Timeouts = {
    connectMs: durationOr(source.timeouts?.connect, DEFAULTS.connectMs),
    responseMs: durationOr(source.timeouts?.response, DEFAULTS.responseMs),
    idleMs: durationOr(source.timeouts?.idle, DEFAULTS.idleMs),
  };
  const services = new Map<string, ServiceDef>();
  for (const [name, spec] of Object.entries(source.services)) services.set(name, compileService(name, spec, defaults));

  return deepFreeze({
    file,
    hash,
    loadedAt,
    source,
    listen: source.listen,
    admin: source.admin,
    limits: {
      headerTimeoutMs: durationOr(source.limits?.headerTimeout, DEFAULTS.headerTimeoutMs),
      maxHeaderBytes: source.limits?.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
      maxHeaderCount: source.limits?.maxHeaderCount ?? DEFAULTS.maxHeaderCount,
      maxBodyBytes: source.limits?.maxBodyBytes,
    },
    drainTimeoutMs: durationOr(source.drainTimeout, DEFAULTS.drainTimeoutMs),
    trustsPeer: compileTrust(source.trustedProxies ?? []),
    accessLog: source.accessLog ?? true,
    services,
    routes: source.routes.map((route, index) => compileRoute(route, index)),
  });
}

function compileService(name: string, spec: ServiceSpec, defaults: Timeouts): ServiceDef {
  const urls = spec.urls ?? (spec.url !== undefined ? [spec.url] : []);
  const timeouts: Timeouts = {
    connectMs: durationOr(spec.timeouts?.connect, defaults.connectMs),
    responseMs: durationOr(spec.timeouts?.response, defaults.responseMs),
    idleMs: durationOr(spec.timeouts?.idle, defaults.idleMs),
  };
  const endpoints = urls.map(endpointOf);
  const balance = spec.balance ?? 'round-robin';
  const consecutiveFailures = spec.outlier?.consecutiveFailures ?? DEFAULTS.consecutiveFailures;
  return {
    name,
    endpoints,
    timeouts,
    balance,
    consecutiveFailures,
    legacy: spec.legacy ?? name === 'legacy',
    fingerprint: JSON.stringify([endpoints, timeouts, balance, consecutiveFailures]),
  };
}

function endpointOf(url: string): EndpointDef {
  const parsed = new URL(url);
  const basePath = parsed.pathname === '/' ? '' : parsed.pathname.replace(/\/$/, '');
  return { origin: parsed.origin, basePath };
}

function compileRoute(spec: RouteSpec, index: number): RouteDef {
  return {
    name: spec.name,
    index,
    conditions: compileMatch(spec.match, mustNormalize),
    action: compileAction(spec),
    fingerprint: JSON.stringify(spec),
  };
}

function compileAction(spec: RouteSpec): RouteAction {
  if (spec.respond) {
    return { kind: 'respond', status: spec.respond.status, body: spec.respond.body ?? '', headers: spec.respond.headers ?? {} };
  }
  return { kind: 'proxy', service: spec.to as string, rewrite: compileRewrite(spec.rewrite?.stripPrefix, spec.rewrite?.addPrefix), hostHeader: spec.rewrite?.host };
}

/**
 * A prefix replacement on segment boundaries: a path is `strip + rest` and goes out as
 * `add + rest`, so `/api` → `/v2` and `/api/x` → `/v2/x` (as Envoy's prefix_rewrite); a path
 * outside `strip` is left alone. Both prefixes are normalized, so the result stays normalized.
 */
export function compileRewrite(stripPrefix: string | undefined, addPrefix: string | undefined): (path: string) => string {
  const strip = stripPrefix?.replace(/\/$/, '') ?? '';
  const add = addPrefix?.replace(/\/$/, '') ?? '';
  if (!strip && !add) return (path) => path;
  return (path) => {
    const rest = strip && (path === strip || path.startsWith(`${strip}/`)) ? path.slice(strip.length) : path;
    return add + rest || '/';
  };
}

function mustNormalize(path: string): string {
  const normalized = normalizePath(path);
  if (typeof normalized !== 'string') throw new Error(`unvalidated path ${path}: ${normalized.reason}`);
  return normalized;
}

/**
 * The snapshot is shared by every request in flight and swapped whole on reload, so nothing may
 * change it in place. Maps cannot be frozen by Object.freeze; their mutators are disabled instead.
 */
function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value) || value instanceof Date) return value;
  if (value instanceof Map) {
    for (const inner of value.values()) deepFreeze(inner);
    for (const method of ['set', 'delete', 'clear'] as const) {
      Object.defineProperty(value, method, { value: () => { throw new TypeError(`the configuration snapshot is immutable (Map.${method})`); } });
    }
  }
  Object.freeze(value);
  for (const inner of Object.values(value)) deepFreeze(inner);
  return value;
}
