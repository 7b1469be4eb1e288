import { z } from 'zod';
import { MAX_TIMER_MS, parseDuration } from './duration.js';

/**
 * The routes.yaml contract (SPEC §1). Every object is strict: an unknown key is an error,
 * because a typo that passes silently is a routing rule that silently does nothing.
 * The schema is the whole file format, including the parts a later stage compiles
 * (cohorts, toggles, canary, shadow, blue/green); validate.ts refuses what this build cannot enforce yet.
 */

const DURATION = /^\d+(\.\d+)?(ms|s|m|h)$/;
export const Duration = z
  .string()
  .regex(DURATION, { message: 'expected a duration such as 250ms, 10s, 5m or 1h', abort: true })
  // Node's timers take at most 2^31-1 ms and fire at once beyond it: 1000h would mean 1 ms.
  .refine((text) => parseDuration(text) <= MAX_TIMER_MS, 'at most 596h (24.8 days), the longest a timer can wait');

const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'names use letters, digits, ".", "_" and "-"');
/**
 * A service, cohort or toggle name is a key of its map. A whole number there would be reordered
 * before every other name by JavaScript (file order matters: `x-ficus-toggles`, `/status`), and
 * `1:` and `"1":` would be one name.
 */
const KeyName = Name.refine((name) => !/^(?:0|[1-9]\d*)$/.test(name), 'a name here may not be a whole number (JavaScript would move it to the front): add a letter, as in "v10"');
const HttpUrl = z
  .string()
  .regex(/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/, { message: 'expected an http:// or https:// URL such as http://127.0.0.1:3001', abort: true })
  .superRefine((text, ctx) => {
    const problem = urlProblem(text);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** The regex admits what a URL parser may still refuse (`:99999`); compile must never throw on a valid file. */
function urlProblem(text: string): string | undefined {
  // Before anything quotes the text: a password must not reach /status, the page or the log.
  if (/^https?:\/\/[^/]*@/.test(text)) return 'a service URL must not contain credentials (user:password@)';
  if (!URL.canParse(text)) return `"${text}" is not a valid URL`;
  const url = new URL(text);
  // Credentials in a URL would be shown by /config and /status and in logs, and are not sent as auth.
  if (url.username !== '' || url.password !== '') return 'a service URL must not contain credentials (user:password@)';
  return undefined;
}
const Port = z.number().int().min(0).max(65535);
const Percent = z.number().min(0).max(100);
const HeaderName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid HTTP header name');
// RFC 9110 §5.5: field values hold visible characters, spaces and tabs; a line break in one is
// a response-splitting hole that Node refuses to send at request time.
const HeaderValue = z.string().regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'a header value holds tabs, spaces and Latin-1 text only: no control characters such as a line break, and no character beyond Latin-1 such as "€"');
const Method = z.string().regex(/^[A-Z]+$/, 'methods are upper-case tokens such as GET');
export const PathPrefix = z.string().regex(/^\/[^\s?#]*$/, 'a path starts with "/" and holds no spaces, "?" or "#"');

const Listen = z.strictObject({ host: z.string().regex(/^\S+$/, 'expected an address such as 0.0.0.0 or 127.0.0.1, not an empty string (which listens on every interface)').default('0.0.0.0'), port: Port.default(8080) });
const Admin = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: Port.default(9901),
  // Sent as `Authorization: Bearer <token>`: a space at either end, a line break or a non-ASCII
  // character could never be presented (Node reads header bytes as Latin-1), locking POSTs out.
  token: z
    .string()
    .regex(/^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/, 'an admin token is printable ASCII with no space at either end (a client could not send it otherwise)')
    .default(''),
});

// RFC 6265 §4.1.1: a cookie name is a token. Anything else (a line break, above all) could not
// be written in the Set-Cookie line, and every anonymous request would fail with it.
const CookieName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid cookie name (letters, digits and !#$%&\'*+.^_`|~-)');

const Identity = z.strictObject({
  header: HeaderName.optional(),
  cookie: CookieName.optional(),
  anonymousCookie: CookieName.optional(),
});

const Timeouts = z.strictObject({
  connect: Duration.optional(),
  response: Duration.optional(),
  idle: Duration.optional(),
});

const Thresholds = {
  interval: Duration.optional(),
  window: Duration.optional(),
  minRequests: z.number().int().min(1).optional(),
  maxErrorRate: z.number().min(0).max(1).optional(),
  maxP99: Duration.optional(),
  maxErrorRateVsStable: z.number().positive().optional(),
  maxP99VsStable: z.number().positive().optional(),
  consecutiveFailures: z.number().int().min(1).optional(),
};

/** A health check's target may carry a query (`/health?deep=1`), as HAProxy's `httpchk` does. */
// Sent as the request line's target: visible ASCII only (anything else is refused by undici, or
// sent as a raw byte a strict server answers 400), as curl or a browser would encode it.
const HealthTarget = z.string().regex(/^\/[\x21\x22\x24-\x7e]*$/, 'a health path starts with "/" and holds visible ASCII only, no spaces or "#" (percent-encode anything else: é is %C3%A9)');

const Health = z.strictObject({
  path: HealthTarget,
  interval: Duration.optional(),
  timeout: Duration.optional(),
  expect: z.number().int().min(100).max(599).optional(),
});

const Outlier = z.strictObject({ consecutiveFailures: z.number().int().min(1).optional() });

const Endpoints = {
  url: HttpUrl.optional(),
  urls: z.array(HttpUrl).min(1).optional(),
};

const Colour = z.strictObject(Endpoints);

export const Service = z.strictObject({
  ...Endpoints,
  blue: Colour.optional(),
  green: Colour.optional(),
  active: z.enum(['blue', 'green']).optional(),
  preview: z.strictObject({ header: HeaderName, token: z.string() }).optional(),
  guard: z.strictObject(Thresholds).optional(),
  health: Health.optional(),
  outlier: Outlier.optional(),
  timeouts: Timeouts.optional(),
  balance: z.enum(['round-robin', 'least-request']).optional(),
  legacy: z.boolean().optional(),
});

const Cohort = z.strictObject({
  users: z.array(z.string()).optional(),
  header: z.strictObject({ name: HeaderName, value: z.string() }).optional(),
  cookie: z.strictObject({ name: CookieName, value: z.string() }).optional(),
  percent: Percent.optional(),
  seed: z.string().optional(),
});

const Toggle = z.strictObject({
  enabled: z.boolean().optional(),
  users: z.array(z.string()).optional(),
  cohorts: z.array(z.string()).optional(),
  percent: Percent.optional(),
  seed: z.string().optional(),
});

const HeaderCondition = z.union([z.string(), z.strictObject({ regex: z.string() })]);

const Match = z.strictObject({
  path: PathPrefix.optional(),
  exact: PathPrefix.optional(),
  regex: z.string().optional(),
  methods: z.array(Method).min(1).optional(),
  host: z.string().optional(),
  headers: z.record(HeaderName, HeaderCondition).optional(),
  query: z.record(z.string(), z.string()).optional(),
  cohort: z.string().optional(),
  toggle: z.string().optional(),
});

const Respond = z.strictObject({
  status: z.number().int().min(200).max(599),
  body: z.string().optional(),
  headers: z.record(HeaderName, HeaderValue).optional(),
});

const Rewrite = z.strictObject({
  stripPrefix: PathPrefix.optional(),
  addPrefix: PathPrefix.optional(),
  host: z.string().regex(/^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/, 'expected a host[:port] such as api.internal or api.internal:8080').optional(),
});

const Analysis = z.strictObject(Thresholds);

const Canary = z.strictObject({
  to: Name,
  weight: Percent,
  steps: z.array(Percent).min(1).optional(),
  stepInterval: Duration.optional(),
  seed: z.string().optional(),
  analysis: Analysis.optional(),
});

// `a.b`, `items.*.id`, `items[0].id`, `$.a.b`: keys separated by dots, `*` for any key or index.
const JsonPath = z
  .string()
  .regex(/^(\$\.?)?(?:[^.[\]\s]+|\[(?:\d+|\*)\])(?:\.[^.[\]\s]+|\[(?:\d+|\*)\])*$/, 'expected a JSON path such as meta.generatedAt, items.*.updatedAt or items[0].id');

const Shadow = z.strictObject({
  to: Name,
  percent: Percent.optional(),
  compare: z.boolean().optional(),
  methods: z.array(Method).min(1).optional(),
  ignoreHeaders: z.array(HeaderName).optional(),
  ignoreJsonPaths: z.array(JsonPath).optional(),
  maxBodyBytes: z.number().int().positive().optional(),
  timeout: Duration.optional(),
  maxConcurrent: z.number().int().min(1).optional(),
});

export const Route = z.strictObject({
  name: Name,
  match: Match,
  to: Name.optional(),
  respond: Respond.optional(),
  rewrite: Rewrite.optional(),
  canary: Canary.optional(),
  shadow: Shadow.optional(),
});

const Limits = z.strictObject({
  headerTimeout: Duration.optional(),
  bodyTimeout: Duration.optional(),
  sendTimeout: Duration.optional(),
  tunnelIdleTimeout: Duration.optional(),
  maxHeaderBytes: z.number().int().min(1024).optional(),
  maxHeaderCount: z.number().int().min(8).optional(),
  maxBodyBytes: z.number().int().positive().optional(),
});

export const RoutesFile = z.strictObject({
  version: z.literal(1),
  listen: Listen.default({ host: '0.0.0.0', port: 8080 }),
  admin: Admin.default({ host: '127.0.0.1', port: 9901, token: '' }),
  identity: Identity.optional(),
  services: z.record(KeyName, Service),
  cohorts: z.record(KeyName, Cohort).optional(),
  toggles: z.record(KeyName, Toggle).optional(),
  routes: z.array(Route),
  auditLog: z.string().optional(),
  stateFile: z.string().optional(),
  drainTimeout: Duration.optional(),
  trustedProxies: z.array(z.string()).optional(),
  limits: Limits.optional(),
  timeouts: Timeouts.optional(),
  accessLog: z.boolean().optional(),
});

export type RoutesFile = z.infer<typeof RoutesFile>;
export type ServiceSpec = z.infer<typeof Service>;
export type RouteSpec = z.infer<typeof Route>;
export type MatchSpec = z.infer<typeof Match>;
/** `canary.analysis` and a blue/green `guard` take the same keys. */
export type AnalysisSpec = z.infer<typeof Analysis>;

export function routesJsonSchema(): unknown {
  return allowEnvReferences(z.toJSONSchema(RoutesFile, { io: 'input', target: 'draft-2020-12' }));
}

/**
 * An unquoted `${env:PORT}` that produces a number or a boolean is read as one (README,
 * *Environment variables*); the file holds a string there, which an editor checking the file
 * against this schema must accept too.
 */
const ENV_REFERENCE = { type: 'string', pattern: '^\\$\\{env:[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}$' };
function allowEnvReferences(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(allowEnvReferences);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) out[key] = key === 'const' || key === 'enum' || key === 'default' ? value : allowEnvReferences(value);
  const type = out.type;
  if (type === 'integer' || type === 'number' || type === 'boolean') return { anyOf: [out, ENV_REFERENCE] };
  return out;
}
