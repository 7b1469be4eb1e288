import type { AudienceDefs, CohortDef, ToggleDef } from '../routing/audience.js';
import { compileAudienceMatch, type AudienceIndex } from '../routing/audience-match.js';
import type { IdentityDef } from '../routing/identity.js';
import { compileMatch } from '../routing/match.js';
import { RouteIndex } from '../routing/route.js';
import { normalizePath } from '../routing/normalize.js';
import { compileTrust } from '../proxy/cidr.js';
import { durationOr, parseDuration } from './duration.js';
import { besideConfig } from './paths.js';
import { secretDigest } from './secret.js';
import type { AnalysisSpec, RouteSpec, RoutesFile, ServiceSpec } from './schema.js';
import type { AnalysisDef, CanaryDef, Colour, ColoursDef, EndpointDef, GuardDef, HealthDef, RouteAction, RouteDef, ServiceDef, ShadowDef, Snapshot, Timeouts } from './snapshot.js';

export const DEFAULTS = {
  connectMs: 5_000,
  responseMs: 30_000,
  idleMs: 60_000,
  headerTimeoutMs: 10_000,
  maxHeaderBytes: 16_384,
  maxHeaderCount: 100,
  drainTimeoutMs: 30_000,
  consecutiveFailures: 5,
  analysisIntervalMs: 10_000,
  analysisWindowMs: 60_000,
  minRequests: 20,
  healthIntervalMs: 10_000,
  healthTimeoutMs: 2_000,
  shadowMaxBodyBytes: 1_048_576,
  shadowTimeoutMs: 5_000,
  shadowMaxConcurrent: 32,
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
  const audience = compileAudience(source);
  const index = audienceIndex(audience);
  const routes = source.routes.map((route, i) => compileRoute(route, i, index));

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
  for (const service of services.values()) if (service.colours?.preview) names.add(service.colours.preview.header);
  return names.size > 0 ? [...names] : undefined;
}

function endpointOf(url: string): EndpointDef {
  const parsed = new URL(url);
  const basePath = parsed.pathname === '/' ? '' : parsed.pathname.replace(/\/$/, '');
  return { origin: parsed.origin, basePath };
}

function compileRoute(spec: RouteSpec, index: number, audience: AudienceIndex): RouteDef {
  return {
    name: spec.name,
    index,
    conditions: [...compileMatch(spec.match, mustNormalize), ...compileAudienceMatch(spec.match, audience)],
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

function compileCanary(spec: RouteSpec): CanaryDef | undefined {
  const canary = spec.canary;
  if (canary === undefined) return undefined;
  return {
    service: canary.to,
    weight: canary.weight,
    seed: canary.seed ?? spec.name,
    steps: canary.steps,
    stepIntervalMs: canary.stepInterval === undefined ? undefined : parseDuration(canary.stepInterval),
    analysis: compileAnalysis(canary.analysis),
    fingerprint: JSON.stringify([spec.name, canary]),
  };
}

/**
 * Longest span one guard verdict looks back over. A 30-minute guard judged over 30 minutes
 * would let 29 good minutes hide a breakage in the last one.
 */
const MAX_GUARD_ANALYSIS_MS = 60_000;
/** A zero interval (validation refuses it) must not spin the guard's loop. */
const MIN_GUARD_INTERVAL_MS = 10;

export function guardDef(spec: AnalysisSpec): GuardDef {
  // The same keys and defaults as a canary's `analysis` (SPEC §1.1): one compiler for both.
  const analysis = compileAnalysis(spec);
  return {
    ...analysis,
    intervalMs: Math.max(MIN_GUARD_INTERVAL_MS, analysis.intervalMs),
    analysisWindowMs: Math.max(1, Math.min(analysis.windowMs, MAX_GUARD_ANALYSIS_MS)),
  };
}

/** `analysis` (or a blue/green `guard`, which takes the same keys) with the defaults of SPEC §1.0. */
export function compileAnalysis(spec: AnalysisSpec | undefined): AnalysisDef {
  return {
    intervalMs: durationOr(spec?.interval, DEFAULTS.analysisIntervalMs),
    windowMs: durationOr(spec?.window, DEFAULTS.analysisWindowMs),
    thresholds: {
      minRequests: spec?.minRequests ?? DEFAULTS.minRequests,
      maxErrorRate: spec?.maxErrorRate,
      maxP99Ms: spec?.maxP99 === undefined ? undefined : parseDuration(spec.maxP99),
      maxErrorRateVsStable: spec?.maxErrorRateVsStable,
      maxP99VsStable: spec?.maxP99VsStable,
    },
    consecutiveFailures: spec?.consecutiveFailures,
  };
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

function compileIdentity(source: RoutesFile): IdentityDef | undefined {
  const identity = source.identity;
  if (!identity) return undefined;
  return { header: identity.header?.toLowerCase(), cookie: identity.cookie, anonymousCookie: identity.anonymousCookie };
}

/** Cohorts and toggles in file order; routes and toggles refer to them by index. */
function compileAudience(source: RoutesFile): AudienceDefs {
  const cohortNames = Object.keys(source.cohorts ?? {});
  const cohorts: CohortDef[] = Object.entries(source.cohorts ?? {}).map(([name, spec], index) => ({
    name,
    index,
    users: spec.users ? new Set(spec.users) : undefined,
    header: spec.header ? { name: spec.header.name.toLowerCase(), value: spec.header.value } : undefined,
    cookie: spec.cookie,
    percent: spec.percent,
    seed: spec.seed ?? name,
  }));
  const toggles: ToggleDef[] = Object.entries(source.toggles ?? {}).map(([name, spec], index) => ({
    name,
    index,
    enabled: spec.enabled ?? true,
    users: spec.users ? new Set(spec.users) : undefined,
    cohorts: spec.cohorts?.map((cohort) => cohortNames.indexOf(cohort)),
    percent: spec.percent,
    seed: spec.seed ?? name,
  }));
  return { cohorts, toggles };
}

function audienceIndex(audience: AudienceDefs): AudienceIndex {
  const find = (list: readonly { name: string }[], kind: string) => (name: string) => {
    const at = list.findIndex((item) => item.name === name);
    if (at === -1) throw new Error(`unvalidated ${kind} reference ${name}`);
    return at;
  };
  return { cohort: find(audience.cohorts, 'cohort'), toggle: find(audience.toggles, 'toggle') };
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
