import type { IncomingHttpHeaders } from 'node:http';
import { headerField } from './request-view.js';

/** Who the caller is (SPEC §1.3), compiled from `identity:`. Names are lower-case. */
export interface IdentityDef {
  readonly header: string | undefined;
  readonly cookie: string | undefined;
  readonly anonymousCookie: string | undefined;
}

export interface Caller {
  /** The id bucketing uses: the user's, the anonymous cookie's, or a per-request random one. */
  readonly id: string;
  /** True when the id names a user (header or cookie), false for anonymous callers. */
  readonly known: boolean;
  /** A Set-Cookie value to send back when an anonymous caller was just given an id. */
  readonly setCookie: string | undefined;
}

const ANONYMOUS_MAX_AGE_S = 365 * 24 * 3600;
const COOKIE_VALUE = /^[A-Za-z0-9._~-]{1,128}$/;

/**
 * First hit wins: `identity.header`, then `identity.cookie`, then the anonymous cookie. An
 * anonymous caller without one gets a fresh random id, set as a cookie when `anonymousCookie`
 * is configured so the next request buckets the same way; otherwise the id lives one request.
 */
export function identify(def: IdentityDef | undefined, headers: IncomingHttpHeaders, secure: boolean, newId: () => string): Caller {
  if (def?.header) {
    const value = headerField(headers, def.header);
    const id = Array.isArray(value) ? value[0] : value;
    if (id) return { id: fieldText(id), known: true, setCookie: undefined };
  }
  const cookies = headers.cookie;
  if (def?.cookie && cookies) {
    const id = cookieValue(cookies, def.cookie);
    if (id) return { id: fieldText(id), known: true, setCookie: undefined };
  }
  if (def?.anonymousCookie) {
    // The first well-formed one: a malformed duplicate sent before it (set for a parent domain
    // or another path) would otherwise earn a new id, and a new bucket, at every request.
    const existing = cookies ? cookieValue(cookies, def.anonymousCookie, wellFormedId) : undefined;
    if (existing) return { id: existing, known: false, setCookie: undefined };
    const id = newId();
    // HttpOnly: scripts have no business with it; Lax: sent on top-level navigations, so the
    // user stays in the same bucket when arriving from a link.
    const setCookie = `${def.anonymousCookie}=${id}; Path=/; Max-Age=${ANONYMOUS_MAX_AGE_S}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
    return { id, known: false, setCookie };
  }
  return { id: newId(), known: false, setCookie: undefined };
}

const wellFormedId = (value: string): boolean => COOKIE_VALUE.test(value);

const NON_ASCII = /[\u0080-\uffff]/;
const BEYOND_LATIN1 = /[\u0100-\uffff]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Node reads header bytes as latin1, so `josé` sent as UTF-8 arrives as `josÃ©`: it would never
 * equal `josé` in a `users:` list, nor bucket as services hashing the real name do. Valid UTF-8 is
 * decoded; other bytes are left as latin1 characters, one per byte. Text that is already more
 * than bytes (a character beyond U+00FF, as `ficus explain -H` gives) is left as it is.
 */
export function fieldText(value: string): string {
  if (!NON_ASCII.test(value) || BEYOND_LATIN1.test(value)) return value;
  try {
    return utf8.decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}

/**
 * Every id the request carries in `def`'s sources, not only the one `identify` picks: the
 * header's (each part, when it was sent twice and Node joined it), the cookie's and the
 * anonymous cookie's. Anything keyed by one of them is about the caller.
 */
export function callerIdsIn(def: IdentityDef, headers: IncomingHttpHeaders): string[] {
  const ids: string[] = [];
  const header = def.header === undefined ? undefined : headerField(headers, def.header);
  for (const value of [header ?? []].flat()) ids.push(...fieldText(value).split(','));
  const cookies = headers.cookie;
  for (const name of [def.cookie, def.anonymousCookie]) {
    const value = cookies !== undefined && name !== undefined ? cookieValue(cookies, name) : undefined;
    if (value !== undefined) ids.push(fieldText(value));
  }
  return ids.map((id) => id.trim()).filter((id) => id !== '');
}

/** The value of cookie `name` in a Cookie header (RFC 6265 §5.4), the first that `accept` takes when given, or undefined. */
export function cookieValue(header: string, name: string, accept?: (value: string) => boolean): string | undefined {
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end === -1) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq !== -1 && eq < end && header.slice(start, eq).trim() === name) {
      const raw = header.slice(eq + 1, end).trim();
      const value = raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2 ? raw.slice(1, -1) : raw;
      if (accept === undefined || accept(value)) return value;
    }
    start = end + 1;
  }
  return undefined;
}
