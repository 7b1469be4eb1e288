import type { AudienceDefs } from '../routing/audience.js';
import type { IdentityDef } from '../routing/identity.js';
import type { Condition } from '../routing/match.js';
import type { RouteIndex } from '../routing/route.js';
import type { PeerTrust } from '../proxy/cidr.js';
import type { Thresholds } from '../rollout/analysis.js';
import type { RoutesFile } from './schema.js';

/** The compiled, immutable form of one routes.yaml. The hot path reads nothing else. */
export interface Snapshot {
  readonly file: string;
  readonly hash: string;
  readonly loadedAt: Date;
  readonly source: RoutesFile;
  /** Dotted paths of the values read from `${env:…}`: shown redacted wherever the config is shown. */
  readonly fromEnv: ReadonlySet<string>;
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: { readonly host: string; readonly port: number; readonly token: string };
  readonly limits: Limits;
  readonly drainTimeoutMs: number;
  readonly trustsPeer: PeerTrust;
  readonly accessLog: boolean;
  readonly services: ReadonlyMap<string, ServiceDef>;
  readonly routes: readonly RouteDef[];
  /** `routes` by first path segment: what the hot path matches against. */
  readonly routeIndex: RouteIndex;
  readonly identity: IdentityDef | undefined;
  readonly audience: AudienceDefs;
  /** False when nothing reads the caller (no cohorts, toggles, canaries or anonymous cookie): identity is skipped. */
  readonly usesCaller: boolean;
  /** True when identity, a cohort or a route condition reads a Forwarded / X-Forwarded-* / X-Real-IP field. */
  readonly readsForwarding: boolean;
  /** Absolute path of the JSON-lines audit file, when configured. */
  readonly auditLog: string | undefined;
  /** Absolute path of the runtime state file, when configured. */
  readonly stateFile: string | undefined;
  /**
   * Lower-case names of the blue/green preview headers: they carry a secret token, so no
   * upstream ever receives them. Undefined when no service has a preview.
   */
  readonly previewHeaders: readonly string[] | undefined;
}

export interface Limits {
  readonly headerTimeoutMs: number;
  /** The longest the client may leave its request body stalled while ficus waits for it. */
  readonly bodyTimeoutMs: number;
  /** The longest a response may wait on a client that does not read it. */
  readonly sendTimeoutMs: number;
  /** The longest a WebSocket tunnel may carry nothing either way before it is closed. */
  readonly tunnelIdleTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
  readonly maxBodyBytes: number | undefined;
}

export interface Timeouts {
  readonly connectMs: number;
  readonly responseMs: number;
  readonly idleMs: number;
}

export interface EndpointDef {
  /** `http://host:port`: the key of the endpoint's connection pool. */
  readonly origin: string;
  /** Path from the service URL, prepended to forwarded paths; "" when none. */
  readonly basePath: string;
}

/** A blue/green pair: two endpoint groups, the active colour, and the preview door to the other. */
export interface ColoursDef {
  readonly active: Colour;
  readonly blue: ServiceDef;
  readonly green: ServiceDef;
  /**
   * A request bearing `header` (lower-case) with exactly `token` reaches the inactive colour.
   * An empty token disables the door; the header is still never forwarded.
   */
  readonly preview: { readonly header: string; readonly token: string; readonly tokenDigest: Buffer } | undefined;
  /** How a cutover is watched and rolled back; undefined when the service has no `guard`. */
  readonly guard: GuardDef | undefined;
}

/** `guard:` with its defaults filled in. */
export interface GuardDef {
  readonly intervalMs: number;
  /** How long after a cutover the new colour is watched. */
  readonly windowMs: number;
  /** The span of the sliding windows each verdict reads. */
  readonly analysisWindowMs: number;
  readonly thresholds: Thresholds;
  /** Failures of the new colour in a row that roll back at once, without waiting for the interval. */
  readonly consecutiveFailures: number | undefined;
}

export type Colour = 'blue' | 'green';

export interface ServiceDef {
  readonly name: string;
  readonly endpoints: readonly EndpointDef[];
  readonly timeouts: Timeouts;
  readonly balance: 'round-robin' | 'least-request';
  readonly consecutiveFailures: number;
  readonly legacy: boolean;
  /** Set for a blue/green service; its own `endpoints` are then empty. */
  readonly colours?: ColoursDef | undefined;
  /** Set on the endpoint group of one colour (`colours.blue`, `colours.green`); its name is the service's. */
  readonly colour?: Colour | undefined;
  /** Active health checks of every endpoint; undefined when the file sets none. */
  readonly health?: HealthDef | undefined;
  /** Equal fingerprints across reloads mean the runtime state (health, ejections) carries over. */
  readonly fingerprint: string;
}

/** `health:` with its defaults: a GET of `path` on every endpoint, every `intervalMs`. */
export interface HealthDef {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** The one status that passes; undefined: any 2xx or 3xx passes. */
  readonly expect: number | undefined;
}

export type RouteAction =
  | {
      readonly kind: 'proxy';
      readonly service: string;
      readonly rewrite: (path: string) => string;
      readonly hostHeader: string | undefined;
      readonly canary: CanaryDef | undefined;
      readonly shadow: ShadowDef | undefined;
    }
  | { readonly kind: 'respond'; readonly status: number; readonly body: string; readonly headers: Readonly<Record<string, string>> };

export interface RouteDef {
  readonly name: string;
  readonly index: number;
  readonly conditions: readonly Condition[];
  readonly action: RouteAction;
  readonly fingerprint: string;
}

/**
 * A sticky weighted split: `weight` % of callers (bucketed by `seed`) go to `service`, watched
 * by the analysis and, with `steps`, walked up to 100 % while healthy. The weight the proxy
 * really uses is the canary's runtime state (rollout/canary.ts), which starts from this one.
 */
export interface CanaryDef {
  readonly service: string;
  readonly weight: number;
  readonly seed: string;
  /** The weights of a progressive rollout, ascending; undefined: the weight stays as written. */
  readonly steps: readonly number[] | undefined;
  readonly stepIntervalMs: number | undefined;
  readonly analysis: AnalysisDef;
  /**
   * The canary block as written, with its route's name: equal fingerprints across reloads mean
   * the runtime state (windows, ejection, step) carries over; any edit starts a new release.
   */
  readonly fingerprint: string;
}

/**
 * `shadow:` with its defaults: a sample of the route's requests is copied to `service` and its
 * answer thrown away (SPEC §1.5), optionally compared with the primary's.
 */
export interface ShadowDef {
  readonly service: string;
  readonly percent: number;
  readonly compare: boolean;
  /** Upper-case methods that are copied (GET and HEAD unless the file says otherwise). */
  readonly methods: ReadonlySet<string>;
  /** Lower-case response header names left out of the comparison, beyond the built-in ones. */
  readonly ignoreHeaders: ReadonlySet<string>;
  /** JSON paths left out of a structural comparison, as written (`items.*.updatedAt`). */
  readonly ignoreJsonPaths: readonly string[];
  /** Request bodies over this are not copied; response bodies over it are not compared. */
  readonly maxBodyBytes: number;
  /** The shadow's own deadline for its whole exchange. */
  readonly timeoutMs: number;
  /** Shadow exchanges of this route in flight at once; more are dropped and counted. */
  readonly maxConcurrent: number;
}

/** `analysis:` with its defaults filled in (SPEC §1.0); each threshold only when given. */
export interface AnalysisDef {
  readonly intervalMs: number;
  readonly windowMs: number;
  readonly thresholds: Thresholds;
  /** Canary failures in a row that eject at once, without waiting for the interval. */
  readonly consecutiveFailures: number | undefined;
}
