/**
 * Request-target normalization, done once per request. The invariant the router relies on:
 * the path returned here is both the path routes are matched against and the path forwarded,
 * so no upstream can decode its way into a route the request did not match (SPEC §1.2).
 *
 * - percent-encoded unreserved characters and "/" are decoded (RFC 3986 §6.2.2.2), so
 *   `%2e%2e` and `..%2f` become dot segments and are removed like any other;
 * - dot segments are removed (RFC 3986 §5.2.4) and repeated slashes merged, as nginx does;
 * - anything an upstream could read two ways is refused: `\` or `%5C` (a separator to some
 *   servers), `%00`, malformed escapes, `..;` / `.;` segments (Tomcat path parameters), and
 *   characters outside RFC 3986 `pchar`.
 * Every other escape is kept, with upper-case hex, and decoded by nobody here: one decode pass.
 */

export type Target =
  | { ok: true; path: string; query: string; host: string | undefined }
  | { ok: false; reason: string };

const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;
const PCHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const ABSOLUTE = /^https?:\/\/([^/?#]*)(.*)$/i;

/** `host[:port]`, a name or an IP literal: what a Host field, or the authority standing for it, may hold. */
export const HOST_VALUE = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]*|\[[0-9A-Fa-f:.]+\])(?::\d*)?$/;

/** Whether a normalized path can hold this character as it is (RFC 3986 `pchar`); any other only percent-encoded. */
export function isPathChar(char: string): boolean {
  return PCHARS.test(char);
}

/** Whether normalization decodes this character where it comes percent-encoded: the unreserved ones and "/". */
export function decodedWhenEscaped(char: string): boolean {
  return char === '/' || UNRESERVED.test(char);
}

export function normalizeTarget(raw: string): Target {
  let target = raw;
  let host: string | undefined;
  if (target.charCodeAt(0) !== 47 /* / */) {
    // RFC 9112 §3.2.2: absolute-form is accepted from clients, and its authority wins over Host.
    const absolute = ABSOLUTE.exec(target);
    if (!absolute) return { ok: false, reason: 'request target must be a path or an absolute http URL' };
    host = absolute[1];
    // RFC 9110 §4.2.4: userinfo in an http URI is an error; an empty authority names no host.
    if (!host || host.includes('@')) return { ok: false, reason: 'absolute-form target with userinfo or without a host' };
    // It takes the place of Host, so it is held to the same rule (RFC 9112 §3.2).
    if (!HOST_VALUE.test(host)) return { ok: false, reason: 'absolute-form target whose authority is no host[:port]' };
    target = absolute[2] || '/';
    if (target.charCodeAt(0) === 63 /* ? */) target = `/${target}`;
  }
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  if (query.includes('#')) return { ok: false, reason: 'fragment in request target' };

  if (PLAIN_PATH.test(rawPath) && !rawPath.includes('/.') && !rawPath.includes('//')) {
    return { ok: true, path: rawPath, query, host };
  }
  const path = normalizePath(rawPath);
  if (typeof path !== 'string') return path;
  return { ok: true, path, query, host };
}

export function normalizePath(rawPath: string): string | { ok: false; reason: string } {
  if (!PCHARS.test(rawPath)) return { ok: false, reason: 'invalid character in path' };
  const decoded = decodeSafe(rawPath);
  if (typeof decoded !== 'string') return decoded;
  return removeDotSegments(decoded);
}

function decodeSafe(path: string): string | { ok: false; reason: string } {
  if (!path.includes('%')) return path;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i] as string;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { ok: false, reason: 'malformed percent-encoding in path' };
    const code = parseInt(hex, 16);
    if (code === 0) return { ok: false, reason: 'encoded NUL in path' };
    if (code === 0x5c) return { ok: false, reason: 'encoded backslash in path' };
    const decoded = String.fromCharCode(code);
    out += code === 0x2f || (code < 0x80 && UNRESERVED.test(decoded)) ? decoded : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

function removeDotSegments(path: string): string | { ok: false; reason: string } {
  const segments = path.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const segment = segments[i] as string;
    // `..;x` is `..` to Tomcat and `..%3B` becomes one after an upstream's own decode.
    if (/^\.\.?(;|%3B)/.test(segment)) {
      return { ok: false, reason: 'dot segment with path parameters' };
    }
    if (segment === '..') {
      out.pop();
      if (i === last) out.push('');
    } else if (segment === '.' || segment === '') {
      if (i === last) out.push('');
    } else {
      out.push(segment);
    }
  }
  return `/${out.join('/')}`;
}

/**
 * The path as Tomcat (and other servlet containers) read it: `;parameters` removed from every
 * segment, then normalized again (`/;x/admin` is `/admin` there). `undefined` when the path has
 * none, so that the usual request pays one `includes`.
 */
export function withoutPathParameters(path: string): string | { ok: false; reason: string } | undefined {
  // `%3B` is `;` once an upstream proxy has decoded it (as `..%3B` is refused above for).
  if (!path.includes(';') && !path.includes('%3B')) return undefined;
  return normalizePath(path.replace(/(?:;|%3B)[^/]*/g, ''));
}
