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
  return { kind: 'proxy', service: spec.to as string, rewrite: compileRewrite(spec), hostHeader: spec.rewrite?.host };
}

/** stripPrefix then addPrefix, on segment boundaries; the result stays a normalized path. */
function compileRewrite(spec: RouteSpec): (path: string) => string {
  const strip = spec.rewrite?.stripPrefix?.replace(/\/$/, '');
  const add = spec.rewrite?.addPrefix?.replace(/\/$/, '');
  if (!strip && !add) return (path) => path;
  return (path) => {
    let out = path;
    if (strip && (out === strip || out.startsWith(`${strip}/`))) out = out.slice(strip.length) || '/';
    if (add) out = add + out;
    return out;
  };
}

function mustNormalize(path: string): string {
  const normalized = normalizePath(path);
  if (typeof normalized !== 'string') throw new Error(`unvalidated path ${path}: ${normalized.reason}`);
  return normalized;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof Map) && !(value instanceof Date)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  if (value instanceof Map) for (const inner of value.values()) deepFreeze(inner);
  return value;
}
