import type { MatchSpec } from '../config/schema.js';
import { looksSecret, REDACTED } from '../config/secret.js';
import { fieldText } from './identity.js';
import { linearRegExp } from './linear-regexp.js';
import { headerField, type RequestView } from './request-view.js';

/** One precompiled `match` key; `describe` says what it requires, for explain and errors. */
export interface Condition {
  readonly key: string;
  readonly describe: string;
  readonly test: (request: RequestView) => boolean;
  /**
   * For `path`, `exact` and plain `regex`: the first path segment (see `firstSegment`) of
   * every path the condition accepts; undefined when it may accept paths under any first
   * segment (`path: /`, most regexes).
   */
  readonly segment?: string | undefined;
}

/**
 * A path's first segment, cut where `pathPrefixTest` cuts segments (`/`, `;`, `%3B`), so that
 * every path a prefix or exact path accepts has the same first segment as that prefix.
 */
export function firstSegment(path: string): string {
  const length = path.length;
  for (let i = 1; i < length; i++) {
    const c = path.charCodeAt(i);
    if (c === 47 /* / */ || c === 59 /* ; */) return path.slice(1, i);
    if (c === 37 /* % */ && path.charCodeAt(i + 1) === 51 /* 3 */ && (path.charCodeAt(i + 2) | 0x20) === 98 /* b */) return path.slice(1, i);
  }
  return path.slice(1);
}

/**
 * The first segment of every path a path regex accepts, when the regex spells it out: it
 * starts `^/word` and the word (letters, digits, `_~-`, escaped dots) ends at `/`, `\/` or `$`,
 * as in `^/orders/\d+$` or `^/item\.php$`. Undefined for any other regex, and for one with an
 * alternation outside parentheses (`^/a/|^/b/` is not anchored to `a`).
 */
export function regexSegment(source: string): string | undefined {
  if (!source.startsWith('^/') || alternatesAtTop(source)) return undefined;
  let segment = '';
  for (let i = 2; i < source.length; i++) {
    const c = source.charAt(i);
    if (WORD.test(c)) {
      segment += c;
    } else if (c === '\\' && source.charAt(i + 1) === '.') {
      segment += '.';
      i++;
    } else {
      const ends = c === '/' || c === '$' || (c === '\\' && source.charAt(i + 1) === '/');
      // A slash that may be absent (`/?`, `/*`, `/{0,1}`) ends nothing: `^/admin/?` also
      // matches `/administrator`, whose first segment is not `admin`.
      const next = source.charAt(c === '\\' ? i + 2 : i + 1);
      const optional = c !== '$' && (next === '?' || next === '*' || next === '{');
      return ends && !optional && segment !== '' ? segment : undefined;
    }
  }
  // `^/orders` alone goes on into `/ordersX`.
  return undefined;
}

const WORD = /^[\w~-]$/;

/** A `|` outside every group and character class. */
function alternatesAtTop(source: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source.charAt(i);
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return true;
  }
  return false;
}

/** A path prefix on segment boundaries: `/api` matches `/api`, `/api/` and `/api/x`, never `/apix`. */
export function pathPrefixTest(prefix: string): (path: string) => boolean {
  if (prefix === '/') return () => true;
  if (prefix.endsWith('/')) return (path) => path.startsWith(prefix);
  const withSlash = `${prefix}/`;
  // `;` ends a segment for servlet containers (`/admin;x` and, decoded, `/admin%3Bx` are
  // `/admin` to Tomcat), so a rule guarding `/admin` must hold for them too: matching more
  // here is the safe direction, and the forwarded path stays as the client wrote it.
  const withParams = `${prefix};`;
  const withEncodedParams = `${prefix}%3B`;
  return (path) =>
    path === prefix || path.startsWith(withSlash) || path.startsWith(withParams) || path.startsWith(withEncodedParams);
}

/**
 * `api.example.com` exactly, or `*.example.com` for any subdomain (not the apex). The host
 * given is already lower-case and port-free (see `hostName`), IPv6 in brackets as in a Host header.
 */
export function hostTest(pattern: string): (host: string) => boolean {
  const bare = pattern.toLowerCase();
  const lower = bare.includes(':') && !bare.startsWith('[') ? `[${bare}]` : bare;
  if (lower.startsWith('*.')) {
    const suffix = lower.slice(1);
    return (host) => host.length > suffix.length && host.endsWith(suffix);
  }
  return (host) => host === lower;
}

function headerValue(request: RequestView, name: string): string | undefined {
  const value = headerField(request.headers, name);
  // Node reads header bytes as latin1: `zürich` sent as UTF-8 is compared as the file wrote it.
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text === undefined ? undefined : fieldText(text);
}

/**
 * Compiles a route's `match` into an ordered list of conditions, cheapest first, all ANDed.
 * Cohort and toggle conditions are added by the caller that owns identity.
 */
export function compileMatch(spec: MatchSpec, normalize: (path: string) => string, fromEnv: (key: string) => boolean = () => false): Condition[] {
  const conditions: Condition[] = [];
  if (spec.methods) {
    const methods = new Set(spec.methods);
    conditions.push({ key: 'methods', describe: `method in ${[...methods].join(',')}`, test: (r) => methods.has(r.method) });
  }
  if (spec.exact !== undefined) {
    const exact = normalize(spec.exact);
    conditions.push({ key: 'exact', describe: `path is ${exact}`, test: (r) => r.path === exact, segment: firstSegment(exact) });
  }
  if (spec.path !== undefined) {
    const prefix = normalize(spec.path);
    const test = pathPrefixTest(prefix);
    const segment = prefix === '/' ? undefined : firstSegment(prefix);
    conditions.push({ key: 'path', describe: `path under ${prefix}`, test: (r) => test(r.path), segment });
  }
  if (spec.host !== undefined) {
    const test = hostTest(spec.host);
    conditions.push({ key: 'host', describe: `host ${spec.host}`, test: (r) => test(r.host) });
  }
  for (const [rawName, condition] of Object.entries(spec.headers ?? {})) {
    const name = rawName.toLowerCase();
    if (typeof condition === 'string') {
      conditions.push({ key: `headers.${rawName}`, describe: `header ${name} is "${looksSecret(name) || fromEnv(`headers.${rawName}`) ? REDACTED : condition}"`, test: (r) => headerValue(r, name) === condition });
    } else {
      const regex = linearRegExp(condition.regex);
      conditions.push({
        key: `headers.${rawName}`,
        describe: `header ${name} matches /${looksSecret(name) || fromEnv(`headers.${rawName}.regex`) ? REDACTED : condition.regex}/`,
        test: (r) => {
          const value = headerValue(r, name);
          return value !== undefined && regex.test(value);
        },
      });
    }
  }
  for (const [name, value] of Object.entries(spec.query ?? {})) {
    conditions.push({ key: `query.${name}`, describe: `query ${name}=${looksSecret(name) || fromEnv(`query.${name}`) ? REDACTED : value}`, test: (r) => r.search !== '' && r.query.getAll(name).includes(value) });
  }
  if (spec.regex !== undefined) {
    const regex = linearRegExp(spec.regex);
    conditions.push({ key: 'regex', describe: `path matches /${spec.regex}/`, test: (r) => regex.test(r.path), segment: regexSegment(spec.regex) });
  }
  return conditions;
}
