import { compileAudienceMatch, type AudienceIndex } from '../routing/audience-match.js';
import { compileMatch } from '../routing/match.js';
import { RouteIndex } from '../routing/route.js';
import { normalizePath } from '../routing/normalize.js';
import { compileTrust } from '../proxy/cidr.js';
import { forwardingField } from '../proxy/headers.js';
import { compileAudience, compileIdentity, audienceIndex } from './compile-audience.js';
import { compileCanary, guardDef } from './compile-rollout.js';
import { DEFAULTS } from './defaults.js';
import { durationOr } from './duration.js';
import { besideConfig } from './paths.js';
import { secretDigest } from './secret.js';
import type { RouteSpec, RoutesFile, ServiceSpec } from './schema.js';
import type { Colour, ColoursDef, EndpointDef, HealthDef, RouteAction, RouteDef, ServiceDef, ShadowDef, Snapshot, Timeouts } from './snapshot.js';

/** Builds the immutable snapshot from a file that `parseRoutes` has already validated. */
export function compile(source: RoutesFile, file: string, hash: string, loadedAt = new Date(), fromEnv: ReadonlySet<string> = new Set()): Snapshot {
  const defaults: Timeouts = {
    connectMs: durationOr(source.timeouts?.connect, DEFAULTS.connectMs),
    responseMs: durationOr(source.timeouts?.response, DEFAULTS.responseMs),
    idleMs: durationOr(source.timeouts?.idle, DEFAULTS.idleMs),
  };
  const services = new Map<string, ServiceDef>();
  for (const [name, spec] of Object.entries(source.services)) services.set(name, compileService(name, spec, defaults));
  const audience = compileAudience(source);
  const index = audienceIndex(audience);
  const routes = source.routes.map((route, i) => compileRoute(route, i, index, (key) => fromEnv.has(`routes.${i}.match.${key}`)));

  return deepFreeze({
    file,
    hash,
    loadedAt,
    source,
    fromEnv,
    listen: source.listen,
    admin: source.admin,
    limits: {
      headerTimeoutMs: durationOr(source.limits?.headerTimeout, DEFAULTS.headerTimeoutMs),
      bodyTimeoutMs: durationOr(source.limits?.bodyTimeout, DEFAULTS.bodyTimeoutMs),
      sendTimeoutMs: durationOr(source.limits?.sendTimeout, DEFAULTS.sendTimeoutMs),
      tunnelIdleTimeoutMs: durationOr(source.limits?.tunnelIdleTimeout, DEFAULTS.tunnelIdleTimeoutMs),
      maxHeaderBytes: source.limits?.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
      maxHeaderCount: source.limits?.maxHeaderCount ?? DEFAULTS.maxHeaderCount,
      maxBodyBytes: source.limits?.maxBodyBytes,
    },
    drainTimeoutMs: durationOr(source.drainTimeout, DEFAULTS.drainTimeoutMs),
    trustsPeer: compileTrust(source.trustedProxies ?? []),
    accessLog: source.accessLog ?? true,
    services,
    routes,
    routeIndex: new RouteIndex(routes),
    identity: compileIdentity(source),
    auditLog: besideConfig(file, source.auditLog),
    stateFile: besideConfig(file, source.stateFile),
    previewHeaders: previewHeaders(services),
    audience,
    // An anonymous cookie must be handed out even when nothing reads the caller yet.
    usesCaller:
      audience.cohorts.length > 0 ||
      audience.toggles.length > 0 ||
      routes.some((r) => r.action.kind === 'proxy' && r.action.canary !== undefined) ||
      source.identity?.anonymousCookie !== undefined,
    readsForwarding: [
      source.identity?.header,
      ...audience.cohorts.map((c) => c.header?.name),
      ...source.routes.flatMap((r) => Object.keys(r.match.headers ?? {})),
    ].some((name) => name !== undefined && forwardingField(name.toLowerCase())),
  });
}

function compileService(name: string, spec: ServiceSpec, defaults: Timeouts): ServiceDef {
  const common = {
    name,
    timeouts: {
      connectMs: durationOr(spec.timeouts?.connect, defaults.connectMs),
      responseMs: durationOr(spec.timeouts?.response, defaults.responseMs),
      idleMs: durationOr(spec.timeouts?.idle, defaults.idleMs),
    },
    balance: spec.balance ?? 'round-robin',
    consecutiveFailures: spec.outlier?.consecutiveFailures ?? DEFAULTS.consecutiveFailures,
    legacy: spec.legacy ?? name === 'legacy',
    health: compileHealth(spec.health),
  } as const;
  const group = (urls: readonly string[], colour?: Colour): ServiceDef => {
    const endpoints = urls.map(endpointOf);
    const fingerprint = JSON.stringify([endpoints, common.timeouts, common.balance, common.consecutiveFailures, common.health ?? null]);
    return colour === undefined ? { ...common, endpoints, fingerprint } : { ...common, endpoints, colour, fingerprint };
  };
  if (spec.blue === undefined || spec.green === undefined || spec.active === undefined) return group(urlsOf(spec));

  const blue = group(urlsOf(spec.blue), 'blue');
  const green = group(urlsOf(spec.green), 'green');
  const preview = spec.preview
    ? { header: spec.preview.header.toLowerCase(), token: spec.preview.token, tokenDigest: secretDigest(spec.preview.token) }
    : undefined;
  const colours: ColoursDef = { active: spec.active, blue, green, preview, guard: spec.guard && guardDef(spec.guard) };
  // Each colour's runtime state is keyed by the colour's own fingerprint, so `active` and
  // `preview` may change here without resetting either colour. The token is hashed: the
  // fingerprint is no place for a secret.
  const door = preview && [preview.header, preview.tokenDigest.toString('hex')];
  const fingerprint = JSON.stringify([blue.fingerprint, green.fingerprint, spec.active, door ?? null]);
  return { ...common, endpoints: [], colours, fingerprint };
}

function compileHealth(spec: ServiceSpec['health']): HealthDef | undefined {
  if (spec === undefined) return undefined;
  const intervalMs = durationOr(spec.interval, DEFAULTS.healthIntervalMs);
  return {
    path: spec.path,
    intervalMs,
    // A check still running when the next is due would overlap it.
    timeoutMs: Math.min(durationOr(spec.timeout, DEFAULTS.healthTimeoutMs), intervalMs),
    expect: spec.expect,
  };
}

function urlsOf(spec: { url?: string | undefined; urls?: string[] | undefined }): readonly string[] {
  return spec.urls ?? (spec.url !== undefined ? [spec.url] : []);
}

function previewHeaders(services: ReadonlyMap<string, ServiceDef>): readonly string[] | undefined {
  const names = new Set<string>();
  // Compared with `_` read as `-` (as CGI, WSGI and Rack read it): either spelling of the name is dropped.
  for (const service of services.values()) if (service.colours?.preview) names.add(service.colours.preview.header.replaceAll('_', '-'));
  return names.size > 0 ? [...names] : undefined;
}

function endpointOf(url: string): EndpointDef {
  const parsed = new URL(url);
  const basePath = parsed.pathname === '/' ? '' : parsed.pathname.replace(/\/$/, '');
  return { origin: parsed.origin, basePath };
}

function compileRoute(spec: RouteSpec, index: number, audience: AudienceIndex, fromEnv: (key: string) => boolean = () => false): RouteDef {
  return {
    name: spec.name,
    index,
    conditions: [...compileMatch(spec.match, mustNormalize, fromEnv), ...compileAudienceMatch(spec.match, audience)],
    action: compileAction(spec),
    fingerprint: JSON.stringify(spec),
  };
}

function compileAction(spec: RouteSpec): RouteAction {
  if (spec.respond) {
    return { kind: 'respond', status: spec.respond.status, body: spec.respond.body ?? '', headers: spec.respond.headers ?? {} };
  }
  return {
    kind: 'proxy',
    service: spec.to as string,
    rewrite: compileRewrite(spec.rewrite?.stripPrefix, spec.rewrite?.addPrefix),
    hostHeader: spec.rewrite?.host,
    canary: compileCanary(spec),
    shadow: compileShadow(spec),
  };
}

function compileShadow(spec: RouteSpec): ShadowDef | undefined {
  const shadow = spec.shadow;
  if (shadow === undefined) return undefined;
  return {
    service: shadow.to,
    percent: shadow.percent ?? 100,
    compare: shadow.compare ?? false,
    methods: new Set(shadow.methods ?? ['GET', 'HEAD']),
    ignoreHeaders: new Set((shadow.ignoreHeaders ?? []).map((name) => name.toLowerCase())),
    ignoreJsonPaths: shadow.ignoreJsonPaths ?? [],
    maxBodyBytes: shadow.maxBodyBytes ?? DEFAULTS.shadowMaxBodyBytes,
    timeoutMs: durationOr(shadow.timeout, DEFAULTS.shadowTimeoutMs),
    maxConcurrent: shadow.maxConcurrent ?? DEFAULTS.shadowMaxConcurrent,
  };
}

/**
 * A prefix replacement on segment boundaries: a path is `strip + rest` and goes out as
 * `add + rest`, so `/api` → `/v2` and `/api/x` → `/v2/x` (as Envoy's prefix_rewrite); a path
 * outside `strip` is not stripped but still gets `add` (`/apix` → `/v2/apix`). Both prefixes
 * are normalized, so the result stays normalized.
 */
export function compileRewrite(stripPrefix: string | undefined, addPrefix: string | undefined): (path: string) => string {
  const strip = stripPrefix?.replace(/\/$/, '') ?? '';
  const add = addPrefix?.replace(/\/$/, '') ?? '';
  if (!strip && !add) return (path) => path;
  // The segment ends the matcher knows (match.ts pathPrefixTest), built once, not per request.
  const slash = `${strip}/`;
  const params = `${strip};`;
  const encodedParams = `${strip}%3B`;
  return (path) => {
    const inside = path === strip || path.startsWith(slash) || path.startsWith(params) || path.startsWith(encodedParams);
    const rest = strip && inside ? path.slice(strip.length) : path;
    const out = add + rest;
    // `/v1;jsessionid=1` stripped of `/v1` is `/;jsessionid=1`, as a servlet container reads it.
    return out === '' ? '/' : out.startsWith('/') ? out : `/${out}`;
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
  if (value === null || typeof value !== 'object' || Object.isFrozen(value) || value instanceof Date || ArrayBuffer.isView(value)) return value;
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
