import { IGNORED, type JsonIgnore, type PathState } from './json-path.js';
import { LongNumber } from './long-numbers.js';

export type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

/**
 * One place where two JSON documents differ. Only the types of the values are kept: a value
 * may be a user's data or a secret, and this goes to the log.
 */
export interface JsonDifference {
  readonly path: string;
  /** missing: only the primary has it; added: only the shadow has it. */
  readonly kind: 'changed' | 'missing' | 'added';
  readonly primary?: JsonType;
  readonly shadow?: JsonType;
}

export interface JsonDiff {
  readonly differences: readonly JsonDifference[];
  /** More differences than `limit` exist; the walk stopped there. */
  readonly truncated: boolean;
}

export const DIFF_LIMIT = 20;
export const PATH_LIMIT = 200;

/**
 * Field names are the API's vocabulary; keys that look like data (a map keyed by user id,
 * e-mail or token) are not, so they are written `*` — which is also the wildcard an operator
 * puts in `ignoreJsonPaths` to silence that difference.
 */
const NAME_LIKE = /^[A-Za-z_$][A-Za-z0-9_$-]{0,39}$/;
const DIGIT = /\d/g;
/** Where a name's words meet: separators, and a lower-case letter or digit before a capital. */
const WORD_BREAK = /[_$-]+|(?<=[a-z0-9])(?=[A-Z])/;
/** From this length, a key is read as a name only if it is made of words. */
const TOKEN_LENGTH = 12;
/** No word of a field name is this long; a run of random letters easily is. */
const LONGEST_WORD = 16;

/**
 * Structural comparison (object key order ignored, arrays by position) of the primary's and
 * the shadow's parsed bodies, skipping the ignored paths, up to `limit` differences.
 */
export function diffJson(primary: unknown, shadow: unknown, ignore: JsonIgnore, limit = DIFF_LIMIT, hidden?: ReadonlySet<string>): JsonDiff {
  const differences: JsonDifference[] = [];
  const path: (string | number)[] = [];
  let truncated = false;

  const record = (kind: JsonDifference['kind'], a: unknown, b: unknown): boolean => {
    if (differences.length === limit) {
      truncated = true;
      return false;
    }
    differences.push({
      path: formatPath(path, hidden),
      kind,
      ...(kind === 'added' ? {} : { primary: typeOf(a) }),
      ...(kind === 'missing' ? {} : { shadow: typeOf(b) }),
    });
    return true;
  };

  /** False once the limit is reached: the walk stops. */
  const walk = (a: unknown, b: unknown, state: PathState): boolean => {
    const ta = typeOf(a);
    if (ta !== typeOf(b)) return record('changed', a, b);
    if (ta === 'array') return walkArray(a as unknown[], b as unknown[], state);
    if (ta === 'object') return walkObject(a as Record<string, unknown>, b as Record<string, unknown>, state);
    return a === b || (a instanceof LongNumber && b instanceof LongNumber && a.text === b.text) || record('changed', a, b);
  };

  const child = (segment: string | number, state: PathState, visit: (next: PathState) => boolean): boolean => {
    const next = ignore.step(state, segment);
    if (next === IGNORED) return true;
    path.push(segment);
    const more = visit(next);
    path.pop();
    return more;
  };

  const walkArray = (a: unknown[], b: unknown[], state: PathState): boolean => {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const more = child(i, state, (next) => {
        if (i >= b.length) return record('missing', a[i], undefined);
        if (i >= a.length) return record('added', undefined, b[i]);
        return walk(a[i], b[i], next);
      });
      if (!more) return false;
    }
    return true;
  };

  const walkObject = (a: Record<string, unknown>, b: Record<string, unknown>, state: PathState): boolean => {
    for (const key of Object.keys(a)) {
      const more = child(key, state, (next) => (Object.hasOwn(b, key) ? walk(a[key], b[key], next) : record('missing', a[key], undefined)));
      if (!more) return false;
    }
    for (const key of Object.keys(b)) {
      if (Object.hasOwn(a, key)) continue;
      if (!child(key, state, () => record('added', undefined, b[key]))) return false;
    }
    return true;
  };

  walk(primary, shadow, ignore.start);
  return { differences, truncated };
}

export function typeOf(value: unknown): JsonType {
  if (value === null) return 'null';
  if (value instanceof LongNumber) return 'number';
  if (Array.isArray(value)) return 'array';
  return typeof value as JsonType;
}

/**
 * `$.items[3].price`, data-like keys as `*`, capped at PATH_LIMIT characters. `hidden` keys are
 * written `*` whatever they look like: the caller's own id, which may well read as a word.
 */
export function formatPath(path: readonly (string | number)[], hidden?: ReadonlySet<string>): string {
  let text = '$';
  for (const segment of path) {
    text += typeof segment === 'number' ? `[${segment}]` : `.${nameLike(segment) && hidden?.has(segment) !== true ? segment : '*'}`;
    if (text.length > PATH_LIMIT) return `${text.slice(0, PATH_LIMIT - 1)}…`;
  }
  return text;
}

function nameLike(key: string): boolean {
  // Ids and tokens carry digits; field names carry a version number at most.
  if (!NAME_LIKE.test(key) || (key.match(DIGIT)?.length ?? 0) > 3) return false;
  if (key.length < TOKEN_LENGTH) return true;
  // A field name is a few words (`lastModifiedByUserID`: last, Modified, By, User, ID;
  // `ssl_cert_not_after`); a base64url token broken at its capitals is a heap of one- and
  // two-letter pieces (`kQzXbVtPwRjL`), and a lower-case one a single endless word.
  const words = key.split(WORD_BREAK).filter((word) => word !== '');
  const letters = words.reduce((sum, word) => sum + word.length, 0);
  return letters >= 3 * words.length && words.every((word) => word.length < LONGEST_WORD);
}
