import { clientResponseHeaders, fieldText, type RawFields } from '../proxy/headers.js';

export type RawHeaders = RawFields;

/**
 * Response fields that differ between two correct answers as a matter of course, so comparing
 * them would only ever report noise:
 * - per-response or per-hop: date, age, via, x-request-id (an upstream may make its own);
 * - content-length, which the body comparison covers (hop-by-hop framing fields never get
 *   here: `clientResponseHeaders` drops them first);
 * - which software answered — exactly what a migration changes: server, x-powered-by;
 * - caching validators computed from the bytes or the deploy time: etag, last-modified, expires;
 * - set-cookie: session ids are fresh on every answer (and are secrets);
 * - x-ficus-*: set by ficus itself.
 */
const IGNORED = new Set([
  'date',
  'age',
  'via',
  'x-request-id',
  'content-length',
  'server',
  'x-powered-by',
  'etag',
  'last-modified',
  'expires',
  'set-cookie',
]);

/**
 * The end-to-end response fields worth comparing, lower-case name → value (repeated fields
 * joined with ", ", RFC 9110 §5.3): hop-by-hop ones and those Connection names are left out,
 * as the client never sees them, and so are the built-in and the configured ignored ones.
 */
export function comparableHeaders(raw: RawHeaders, ignore: ReadonlySet<string>): Map<string, string> {
  const flat = clientResponseHeaders(raw);
  const out = new Map<string, string>();
  for (let i = 0; i < flat.length; i += 2) {
    const name = (flat[i] as string).toLowerCase();
    if (IGNORED.has(name) || name.startsWith('x-ficus-') || ignore.has(name)) continue;
    const value = (flat[i + 1] as string).trim();
    const before = out.get(name);
    out.set(name, before === undefined ? value : `${before}, ${value}`);
  }
  return out;
}

/** Names (never values) of the fields present on one side only or with different values, sorted. */
export function differingHeaders(primary: ReadonlyMap<string, string>, shadow: ReadonlyMap<string, string>): string[] {
  const names: string[] = [];
  for (const [name, value] of primary) if (shadow.get(name) !== value) names.push(name);
  for (const name of shadow.keys()) if (!primary.has(name)) names.push(name);
  return names.sort();
}

/** The value of one field from raw headers, lower-case, '' when absent. */
export function rawHeader(raw: RawHeaders, name: string): string {
  for (let i = 0; i < raw.length; i += 2) {
    const field = raw[i] as Buffer | string;
    if (field.length === name.length && fieldText(field).toLowerCase() === name) return fieldText(raw[i + 1] as Buffer | string).trim().toLowerCase();
  }
  return '';
}
