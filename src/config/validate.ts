import { METHODS } from 'node:http';
import { isIP } from 'node:net';
import { isLoopbackAddress, networkIfHostBitsSet, parseCidr } from '../proxy/cidr.js';
import { forwardingField, HOP_BY_HOP } from '../proxy/headers.js';
import { REFUSED_METHODS } from '../routing/decide.js';
import { linearRegExp } from '../routing/linear-regexp.js';
import { looksSecret, REDACTED } from './secret.js';
import { decodedWhenEscaped, isPathChar, normalizePath } from '../routing/normalize.js';
import { parseDuration } from './duration.js';
import { LONGEST_P99_MS } from '../rollout/windows.js';
import { Duration, PathPrefix } from './schema.js';

export interface CrossProblem {
  path: (string | number)[];
  message: string;
  /** Point at the key itself (the thing to remove or rename) rather than at its value. */
  atKey?: boolean;
}

/** What a reload cannot change in the running process: the addresses bound at start. */
export interface Running {
  readonly adminHost: string;
}

type Report = (path: (string | number)[], message: string, atKey?: boolean) => void;
type Fields = Readonly<Record<string, unknown>>;

/**
 * Checks that hold across keys: references resolve, names are unique, patterns compile. They
 * read the document as written (after env substitution), not the schema's output, so that they
 * run even when the schema failed elsewhere and every error is reported in one pass; each check
 * looks only at values of the right type and leaves wrong types to the schema's own message.
 */
export function crossCheck(document: unknown, running?: Running): CrossProblem[] {
  const problems: CrossProblem[] = [];
  const problem: Report = (path, message, atKey) => problems.push(atKey ? { path, message, atKey } : { path, message });
  const file = fields(document);

  for (const path of protoKeys(document, [])) problem(path, 'a key named "__proto__" would be dropped by the JavaScript that reads the file; rename it', true);
  const identity = fields(file.identity);
  if (typeof identity.cookie === 'string' && identity.cookie === identity.anonymousCookie) {
    // The random id ficus gives an anonymous caller would come back as a known user's id.
    problem(['identity', 'anonymousCookie'], `"${identity.cookie}" is already identity.cookie, the cookie a known user's id is read from; give the anonymous id a cookie of its own`);
  }
  const admin = fields(file.admin);
  const token = admin.token ?? '';
  if (typeof admin.host === 'string' && !isLoopback(admin.host) && token === '') {
    problem(['admin', 'host'], `admin listener on non-loopback host ${admin.host} needs admin.token`);
  } else if (running !== undefined && !isLoopback(running.adminHost) && token === '') {
    // The token is read per request, but the listener moves only at a restart.
    problem(['admin', admin.token === undefined ? 'host' : 'token'], `the admin listener stays on non-loopback host ${running.adminHost} until a restart, so it keeps needing admin.token`);
  }
  // Both listeners on one port: the second bind would fail at start with "already in use", by ficus itself.
  const listen = fields(file.listen);
  const listenPort = listen.port ?? 8080;
  const adminPort = admin.port ?? 9901;
  if (typeof adminPort === 'number' && adminPort !== 0 && adminPort === listenPort) {
    const hosts = [listen.host ?? '0.0.0.0', admin.host ?? '127.0.0.1'].map((h) => String(h).replace(/^\[(.*)\]$/, '$1'));
    // `::` is dual-stack in Node (every address of both families); `0.0.0.0` only IPv4's, so
    // `0.0.0.0` and `::1` bind the one port side by side.
    const clash = hosts[0] === hosts[1] || hosts.includes('::') || (hosts.includes('0.0.0.0') && hosts.every((h) => isIP(h) !== 6));
    if (clash) problem(['admin', 'port'], `port ${adminPort} is also listen.port: the admin listener needs a port of its own`);
  }
  const services = fields(file.services);
  for (const [name, service] of Object.entries(services)) if (isRecord(service)) checkService(name, service, problem);
  // A zero would mean "off" to some of the timers behind these keys, "at once" to others, and an
  // invalid pool setting (every request failing) to `idle`: none of them is what was meant.
  checkTimeouts(file.timeouts, ['timeouts'], problem);
  const limits = fields(file.limits);
  for (const key of ['headerTimeout', 'bodyTimeout', 'sendTimeout', 'tunnelIdleTimeout']) checkPositive(limits[key], ['limits', key], problem);

  const cohorts = new Set(Object.keys(fields(file.cohorts)));
  const toggles = new Set(Object.keys(fields(file.toggles)));
  for (const [name, cohort] of Object.entries(fields(file.cohorts))) {
    if (isRecord(cohort) && !['users', 'header', 'cookie', 'percent'].some((key) => cohort[key] !== undefined)) {
      problem(['cohorts', name], 'a cohort needs at least one of "users", "header", "cookie" or "percent"', true);
    }
  }
  for (const [name, toggle] of Object.entries(fields(file.toggles))) {
    list(fields(toggle).cohorts).forEach((cohort, i) => {
      if (typeof cohort === 'string' && !cohorts.has(cohort)) problem(['toggles', name, 'cohorts', i], `unknown cohort "${cohort}"`);
    });
  }
  list(file.trustedProxies).forEach((text, i) => {
    if (typeof text !== 'string') return;
    const cidr = parseCidr(text);
    const zone = /%[^/]*/.exec(text)?.[0];
    if (!cidr && zone !== undefined) return problem(['trustedProxies', i], `"${text}" names a zone (${zone}), which ficus cannot match: write the address alone, which trusts it on every interface`);
    if (!cidr) return problem(['trustedProxies', i], `"${text}" is not an IP address or CIDR such as 10.0.0.0/8`);
    const network = networkIfHostBitsSet(cidr);
    if (network !== undefined) problem(['trustedProxies', i], `"${text}" has address bits set past its /${cidr.prefix} prefix: write ${network} for the network, or ${cidr.address} alone for one address`);
  });

  const names = new Set(Object.keys(services));
  const seen = new Map<string, number>();
  const known: Known = { services: names, cohorts, toggles };
  list(file.routes).forEach((route, i) => {
    if (isRecord(route)) checkRoute(route, i, known, seen, problem);
  });
  return problems;
}

interface Known {
  services: ReadonlySet<string>;
  cohorts: ReadonlySet<string>;
  toggles: ReadonlySet<string>;
}

/** Fields that say how a message is framed or how its connection behaves: ficus's own to set. */
const FRAMING: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length']);

function checkRoute(route: Fields, i: number, known: Known, seen: Map<string, number>, problem: Report): void {
  const services = known.services;
  const at = (...rest: (string | number)[]) => ['routes', i, ...rest];
  if (typeof route.name === 'string') {
    const earlier = seen.get(route.name);
    if (earlier !== undefined) problem(at('name'), `duplicate route name "${route.name}" (also routes.${earlier})`);
    else seen.set(route.name, i);
  }
  if ((route.to === undefined) === (route.respond === undefined)) problem(at(), 'a route needs exactly one of "to" or "respond"');
  if (typeof route.to === 'string' && !services.has(route.to)) problem(at('to'), `unknown service "${route.to}"`);
  if (route.respond !== undefined && route.rewrite !== undefined) problem(at('rewrite'), 'a "respond" route forwards nothing to rewrite', true);
  for (const name of Object.keys(fields(fields(route.respond).headers))) {
    // A second framing of the body (Transfer-Encoding beside ficus's Content-Length) is what
    // desynchronizes a cache or proxy in front of ficus.
    if (FRAMING.has(name.toLowerCase())) problem(at('respond', 'headers', name), `ficus frames its own answer: "${name}" cannot be set here`, true);
  }
  checkCanary(route, at, services, problem);
  checkShadow(route, at, services, problem);
  const match = fields(route.match);
  for (const [key, names] of [['cohort', known.cohorts], ['toggle', known.toggles]] as const) {
    const value = match[key];
    if (typeof value !== 'string') continue;
    const name = value.startsWith('!') ? value.slice(1) : value;
    if (!names.has(name)) problem(at('match', key), `unknown ${key} "${name}"`);
  }
  for (const key of ['path', 'exact']) {
    checkPath(match[key], at('match', key), problem);
    // A request matching it carries parameters, and is refused whenever it would match another
    // route without them (the path-parameter rule): such a route would almost never serve.
    const text = match[key];
    if (typeof text === 'string' && (text.includes(';') || text.toUpperCase().includes('%3B'))) {
      problem(at('match', key), `"${text}": a path parameter (";") cannot be matched: ficus reads a path's parameters as the path without them`);
    }
  }
  for (const [j, method] of (Array.isArray(match.methods) ? match.methods : []).entries()) {
    if (typeof method !== 'string' || !/^[A-Z]+$/.test(method)) continue;
    if (REFUSED_METHODS.has(method)) problem(at('match', 'methods', j), `${method} is refused with 405 before any route is looked for`);
    else if (!PARSED_METHODS.has(method)) problem(at('match', 'methods', j), `ficus's HTTP parser refuses the method ${method} with 400 before any route is looked for`);
  }
  const rewrite = fields(route.rewrite);
  for (const key of ['stripPrefix', 'addPrefix']) checkPath(rewrite[key], at('rewrite', key), problem);

  checkRegex(match.regex, at('match', 'regex'), problem);
  if (typeof match.regex === 'string') {
    const never = unmatchableInPath(match.regex);
    if (never !== undefined) problem(at('match', 'regex'), never);
  }
  // Header names are case-insensitive: `X-Beta` and `x-beta` are one field, read twice.
  for (const key of ['match', 'respond'] as const) {
    const seenNames = new Map<string, string>();
    for (const name of Object.keys(fields(fields(route[key]).headers))) {
      const earlier = seenNames.get(name.toLowerCase());
      if (earlier !== undefined) problem(at(key, 'headers', name), `"${name}" is the header "${earlier}" again (header names are case-insensitive): ${key === 'match' ? 'both conditions must hold on one value' : 'only one of the values is sent'}; keep one`);
      else seenNames.set(name.toLowerCase(), name);
    }
  }
  for (const [name, condition] of Object.entries(fields(match.headers))) {
    checkRegex(fields(condition).regex, at('match', 'headers', name, 'regex'), problem);
  }
  if (typeof match.host === 'string' && !isHostPattern(match.host)) {
    problem(at('match', 'host'), `"${match.host}" is not a host name or *.domain pattern (without port)`);
  }
}

/** The methods Node's parser reads; any other is answered 400 before a route is looked for. */
const PARSED_METHODS: ReadonlySet<string> = new Set(METHODS);

/** A canary's split, its steps and its analysis: what the schema alone cannot say. */
function checkCanary(route: Fields, at: (...rest: (string | number)[]) => (string | number)[], services: ReadonlySet<string>, problem: Report): void {
  if (!isRecord(route.canary)) return;
  const canary = route.canary;
  if (route.respond !== undefined) problem(at('canary'), 'a "respond" route has no traffic to split', true);
  if (typeof canary.to === 'string') {
    if (!services.has(canary.to)) problem(at('canary', 'to'), `unknown service "${canary.to}"`);
    else if (canary.to === route.to) problem(at('canary', 'to'), 'the canary is the same service as the route\'s "to"');
  }
  const steps = list(canary.steps);
  steps.forEach((step, i) => {
    const before = steps[i - 1];
    if (i > 0 && typeof step === 'number' && typeof before === 'number' && step <= before) {
      problem(at('canary', 'steps', i), `steps go up: ${step} after ${before}`);
    }
  });
  if (canary.steps !== undefined && canary.stepInterval === undefined) {
    problem(at('canary', 'steps'), 'steps need "stepInterval": how long each step lasts while the canary is healthy', true);
  }
  // At 0 % the canary gets no traffic, so no verdict is ever healthy and no step is ever taken.
  if (canary.weight === 0 && steps.length > 0 && steps.some((step) => typeof step === 'number' && step > 0)) {
    problem(at('canary', 'weight'), `a rollout cannot start from 0 %: with no traffic no verdict is ever healthy, so no step is taken; start at the first step (weight: ${String(steps.find((step) => typeof step === 'number' && step > 0))})`);
  }
  if (canary.stepInterval !== undefined && canary.steps === undefined) {
    problem(at('canary', 'stepInterval'), 'stepInterval without "steps" has nothing to step through', true);
  }
  checkPositive(canary.stepInterval, at('canary', 'stepInterval'), problem);
  const analysis = fields(canary.analysis);
  for (const key of ['interval', 'window']) checkPositive(analysis[key], at('canary', 'analysis', key), problem);
  checkMeasurableP99(analysis.maxP99, at('canary', 'analysis', 'maxP99'), problem);
}

function checkShadow(route: Fields, at: (...rest: (string | number)[]) => (string | number)[], services: ReadonlySet<string>, problem: Report): void {
  if (!isRecord(route.shadow)) return;
  const shadow = route.shadow;
  if (route.respond !== undefined) problem(at('shadow'), 'a "respond" route has no traffic to copy', true);
  if (typeof shadow.to === 'string') {
    if (!services.has(shadow.to)) problem(at('shadow', 'to'), `unknown service "${shadow.to}"`);
    // The copy would land on the very service that answers the client, doubling its load.
    else if (shadow.to === route.to) problem(at('shadow', 'to'), 'the shadow is the same service as the route\'s "to"');
    // The canary side's requests would be copied to the service that just answered them.
    else if (isRecord(route.canary) && shadow.to === route.canary.to) problem(at('shadow', 'to'), 'the shadow is the same service as the route\'s canary');
  }
  checkPositive(shadow.timeout, at('shadow', 'timeout'), problem);
}

/** A p99 threshold above the slowest latency a window tells apart could never be exceeded. */
function checkMeasurableP99(value: unknown, path: (string | number)[], problem: Report): void {
  // In whole hours, as the message says it: the top bucket ends a little past 29 h.
  const hours = Math.floor(LONGEST_P99_MS / 3_600_000);
  if (Duration.safeParse(value).success && parseDuration(value as string) > hours * 3_600_000) {
    problem(path, `at most ${hours}h: no longer latency is told apart, so a higher maxP99 could never be exceeded`);
  }
}

/** A zero interval would spin the analysis; a zero window would judge nothing. */
function checkPositive(value: unknown, path: (string | number)[], problem: Report): void {
  if (Duration.safeParse(value).success && parseDuration(value as string) === 0) problem(path, 'must be longer than 0');
}

function checkTimeouts(value: unknown, path: string[], problem: Report): void {
  const timeouts = fields(value);
  for (const key of ['connect', 'response', 'idle']) checkPositive(timeouts[key], [...path, key], problem);
}

function checkService(name: string, service: Fields, problem: Report): void {
  const at = (...rest: string[]) => ['services', name, ...rest];
  checkTimeouts(service.timeouts, at('timeouts'), problem);
  const direct = ENDPOINT_KEYS.filter((key) => service[key] !== undefined);
  if (COLOUR_KEYS.some((key) => service[key] !== undefined)) {
    checkColours(service, direct, at, problem);
  } else {
    if (direct.length !== 1) problem(at(), 'a service needs exactly one of "url" or "urls"', true);
    if (service.preview !== undefined) problem(at('preview'), 'preview needs a blue/green service ("blue", "green" and "active")', true);
  }
  if (service.guard !== undefined) {
    if (!COLOUR_KEYS.some((key) => service[key] !== undefined)) problem(at('guard'), 'guard needs a blue/green service ("blue", "green" and "active")', true);
    const guard = fields(service.guard);
    for (const key of ['interval', 'window']) checkPositive(guard[key], at('guard', key), problem);
    checkMeasurableP99(guard.maxP99, at('guard', 'maxP99'), problem);
  }
  const health = fields(service.health);
  for (const key of ['interval', 'timeout']) checkPositive(health[key], at('health', key), problem);
  const groups: [Fields, string[]][] = [[service, []], [fields(service.blue), ['blue']], [fields(service.green), ['green']]];
  for (const [group, where] of groups) {
    if (typeof group.url === 'string') checkUrlPath(group.url, at(...where, 'url'), problem);
    list(group.urls).forEach((url, i) => {
      if (typeof url === 'string') checkUrlPath(url, [...at(...where, 'urls'), i], problem);
    });
  }
}

/**
 * The URL's path goes in front of every forwarded path, so it must be one ficus would accept
 * from a client: `http://h//` would forward `//x`, and `http://h/a%zz` a malformed escape.
 */
function checkUrlPath(url: string, path: (string | number)[], problem: Report): void {
  if (!URL.canParse(url)) return;
  const unsound = unnormalized(new URL(url).pathname);
  if (unsound !== undefined) problem(path, `the URL's path ${unsound}`);
}

const ENDPOINT_KEYS = ['url', 'urls'] as const;
const COLOUR_KEYS = ['blue', 'green', 'active'] as const;

/** A blue/green service names its endpoints per colour only, so no request can miss its colour. */
function checkColours(service: Fields, direct: readonly string[], at: (...rest: string[]) => (string | number)[], problem: Report): void {
  const missing = COLOUR_KEYS.filter((key) => service[key] === undefined);
  if (missing.length > 0) problem(at(), `a blue/green service needs "blue", "green" and "active" (missing ${missing.map((key) => `"${key}"`).join(', ')})`, true);
  for (const key of direct) problem(at(key), `a blue/green service takes its URLs in "blue" and "green", not in "${key}"`, true);
  for (const colour of ['blue', 'green'] as const) {
    const group = service[colour];
    if (isRecord(group) && ENDPOINT_KEYS.filter((key) => group[key] !== undefined).length !== 1) {
      problem(at(colour), `the ${colour} colour needs exactly one of "url" or "urls"`, true);
    }
  }
  const preview = fields(service.preview);
  const previewName = typeof preview.header === 'string' ? preview.header.toLowerCase().replaceAll('_', '-') : undefined;
  if (previewName !== undefined && SHARED_FIELDS.has(previewName)) {
    // The preview header is removed from every request to every service (it carries a secret).
    problem(at('preview', 'header'), `"${preview.header}" is a field clients send for other reasons, and ficus removes the preview header from every request to every service; use a header of its own, such as x-ficus-preview`);
  } else if (previewName !== undefined && forwardingField(previewName)) {
    problem(at('preview', 'header'), `"${preview.header}" is a forwarding field, which ficus believes from trustedProxies only; use a header of its own, such as x-ficus-preview`);
  }
  // Node trims a field value: a token with a space at either end could never be presented.
  if (typeof preview.token === 'string' && preview.token !== preview.token.trim()) {
    problem(at('preview', 'token'), 'a preview token has no space at either end (a client could not send it otherwise)');
  }
}

/**
 * Request fields with a meaning of their own: never a preview door's. Nor is a forwarding field
 * (`forwardingField`: Forwarded, X-Forwarded-*, X-Real-IP), which ficus believes from trusted
 * proxies only: a token in one would be honoured from a client or not depending on unrelated keys.
 */
const SHARED_FIELDS: ReadonlySet<string> = new Set([
  'cookie', 'authorization', 'host', 'user-agent', 'accept', 'accept-encoding', 'accept-language', 'content-type',
  'content-length', 'content-encoding', 'origin', 'referer', 'x-request-id', 'if-none-match', 'if-modified-since',
  'cache-control', 'range', ...HOP_BY_HOP,
]);

function isLoopback(host: string): boolean {
  const bare = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return bare === 'localhost' || isLoopbackAddress(bare);
}

/** `api.example.com`, `*.example.com`, an IPv4 address or an IPv6 one (bracketed or not). */
function isHostPattern(host: string): boolean {
  if (/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(host)) return true;
  return isIP(host.replace(/^\[(.*)\]$/, '$1')) !== 0;
}

/** Matching compares normalized paths, so a prefix written otherwise could never match as written. */
function checkPath(value: unknown, path: (string | number)[], problem: Report): void {
  if (!PathPrefix.safeParse(value).success) return;
  const unsound = unnormalized(value as string);
  if (unsound !== undefined) problem(path, unsound);
}

/** Why `text` is not a path ficus would match as written, quoting it; undefined when it is. */
function unnormalized(text: string): string | undefined {
  const normalized = normalizePath(text);
  if (typeof normalized !== 'string') return `"${text}": ${normalized.reason}`;
  return normalized === text ? undefined : `"${text}" is not a normalized path (write "${normalized}")`;
}

/** Characters of a pattern that are its own syntax here, not literals (groups, classes and escapes are read apart). */
const REGEX_SYNTAX = /[\^$.*+?{}]/;

/**
 * A path regex is matched against the normalized path (pchar ASCII, unreserved characters and
 * `/` decoded, every other escape in upper-case hex): a literal outside that alphabet, or an
 * escape normalization never leaves, can never match. Undefined when none is written.
 */
export function unmatchableInPath(source: string): string | undefined {
  // One frame per group: what it needs, and whether it has alternatives (`a|b`), any of which
  // may be the one that matches (`(\.\.|%2e%2e)`, `(/|%2F)`), so that none of its needs is sure.
  const frames: { needs: string[]; alternatives: boolean }[] = [{ needs: [], alternatives: false }];
  const optional = (at: number) => /^(?:[?*]|\{0[,}])/.test(source.slice(at));
  let inClass = false;
  const need = (message: string, next: number) => {
    if (!optional(next)) frames.at(-1)?.needs.push(message);
  };
  for (let i = 0; i < source.length; i++) {
    const c = source.charAt(i);
    if (c === '\\') {
      // `\ ` is a literal space; other escapes (`\.`, `\d`, `\/`) are the regex's own.
      if (!inClass && source.charAt(i + 1) === ' ') need('the pattern needs a space, which a path only holds encoded (write %20)', i + 2);
      i++;
      continue;
    }
    if (inClass) {
      inClass = c !== ']';
      continue;
    }
    if (c === '[') {
      inClass = true;
      continue;
    }
    if (c === '(') {
      frames.push({ needs: [], alternatives: false });
      // `(?<name>`, `(?<=`, `(?<!`: the `<` and `>` are the regex's own (a lookbehind is refused by checkRegex).
      if (source.startsWith('(?<', i)) {
        const close = /^[=!]/.test(source.charAt(i + 3)) ? i + 3 : source.indexOf('>', i + 3);
        if (close !== -1) i = close;
      }
      continue;
    }
    if (c === ')') {
      const group = frames.length > 1 ? frames.pop() : undefined;
      if (group && !group.alternatives && !optional(i + 1)) frames.at(-1)?.needs.push(...group.needs);
      continue;
    }
    if (c === '|') {
      (frames.at(-1) as { alternatives: boolean }).alternatives = true;
      continue;
    }
    if (!REGEX_SYNTAX.test(c) && !isPathChar(c)) {
      // A whole code point (an emoji is two UTF-16 units), so that the advice is its UTF-8.
      const char = String.fromCodePoint(source.codePointAt(i) as number);
      const encoded = [...Buffer.from(char)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
      need(`the pattern needs "${char}", which a path only holds percent-encoded (routes see the path normalized, as forwarded): write ${encoded}`, i + char.length);
      continue;
    }
    if (c === '%' && /^[0-9A-Fa-f]{2}$/.test(source.slice(i + 1, i + 3))) {
      const hex = source.slice(i + 1, i + 3);
      const decoded = String.fromCharCode(parseInt(hex, 16));
      if (decodedWhenEscaped(decoded)) need(`the pattern needs %${hex}, which the path never holds: ficus decodes it to "${decoded}" before matching`, i + 3);
      else if (hex !== hex.toUpperCase()) need(`the pattern needs %${hex}, which the path never holds: escapes are matched in upper case (%${hex.toUpperCase()})`, i + 3);
    }
  }
  const top = frames[0] as { needs: string[]; alternatives: boolean };
  return top.alternatives ? undefined : top.needs[0];
}

function checkRegex(source: unknown, path: (string | number)[], problem: Report): void {
  if (typeof source !== 'string') return;
  try {
    linearRegExp(source);
  } catch (error) {
    const message = (error as Error).message.replace(/^Invalid regular expression: /, 'invalid regular expression ');
    // Errors reach the log and /status, which needs no token: a pattern matched against a
    // secret-looking header is a secret too.
    const secret = path.some((segment) => typeof segment === 'string' && looksSecret(segment));
    problem(path, secret ? message.replaceAll(`/${source}/`, `/${REDACTED}/`) : message);
  }
}

/** Paths of `__proto__` keys: the schema's records drop them, so `query: { __proto__: x }` would match anything. */
function protoKeys(value: unknown, path: (string | number)[]): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((item, i) => protoKeys(item, [...path, i]));
  if (!isRecord(value)) return [];
  return Object.entries(value).flatMap(([key, inner]) => (key === '__proto__' ? [[...path, key]] : protoKeys(inner, [...path, key])));
}

function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fields(value: unknown): Fields {
  return isRecord(value) ? value : {};
}

function list(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}
