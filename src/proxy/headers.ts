import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/** RFC 9110 §7.6.1 hop-by-hop fields, plus fields the proxy owns and sets itself. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Never copied from the client: hop-by-hop fields; `http2-settings`, which belongs to an h2c
 * upgrade of the client's own connection (connection-specific by RFC 7540 §3.2.1, deprecated
 * by RFC 9113 §3.1; ficus never tunnels h2c); `expect` (Node has already answered
 * 100-continue); `host` and `x-request-id`, which ficus sets itself.
 */
const DROPPED = new Set([...HOP_BY_HOP, 'http2-settings', 'expect', 'host', 'x-request-id']);

/** Set by ficus at the edge: a client-sent value is dropped unless the peer is a trusted proxy. */
const FORWARDING = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

/**
 * Told by a proxy about earlier hops, never by a client (SPEC §1.7 "X-Forwarded-*"): the whole
 * `X-Forwarded-` family (Rack reads X-Forwarded-Ssl and -Scheme before -Proto, Spring -Prefix and
 * -Port) and X-Real-IP, nginx's usual client address. Kept only from a trusted peer.
 */
function proxyTold(name: string): boolean {
  return name.startsWith('x-forwarded-') || name === 'x-real-ip';
}

/** Whether ficus believes `name` (lower-case) only from a trusted proxy: Forwarded and the X-Forwarded-* family. */
export function forwardingField(name: string): boolean {
  return name === 'forwarded' || proxyTold(name);
}

/**
 * The request's headers as routing may read them from an untrusted peer: without the fields
 * ficus does not forward from it (SPEC §1.7), so that no route, cohort or identity is decided
 * on a value ficus itself refuses to believe.
 */
export function believedHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!forwardingField(name)) out[name] = value;
  return out;
}

/**
 * The scheme the original client used, as a trusted proxy reports it: the first element of the
 * first X-Forwarded-Proto line, the line `upstreamRequestHeaders` forwards, read
 * case-insensitively (RFC 3986 §3.1). Node joins repeated lines with ", ", which would never
 * equal "https".
 */
export function clientScheme(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() === 'x-forwarded-proto') return (raw[i + 1] as string).split(',')[0]?.trim().toLowerCase();
  }
  return undefined;
}

export interface ForwardingContext {
  /** The TCP peer address. */
  peer: string;
  /** Whether the peer may tell us about earlier hops. */
  trusted: boolean;
  /**
   * The Host the client asked for, with its port: the authority of an absolute-form target,
   * else the Host header (RFC 9112 §3.2.2). Sent upstream as Host and X-Forwarded-Host.
   */
  host: string;
  requestId: string;
  /** Replaces the Host header sent upstream (`rewrite.host`). */
  hostOverride: string | undefined;
  /** Lower-case names never forwarded because they carry a secret (blue/green preview tokens). */
  secret?: readonly string[] | undefined;
}

function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  // What nearly every client sends names nothing but itself: no set to build.
  if (text.length <= 10) {
    const lower = text.toLowerCase();
    if (lower === 'keep-alive' || lower === 'close') return undefined;
  }
  const tokens = new Set<string>();
  for (const part of text.split(',')) {
    const token = part.trim().toLowerCase();
    if (token) tokens.add(token);
  }
  return tokens;
}

/**
 * The header list sent upstream, as a flat [name, value, …] array built from the raw headers so
 * that duplicates and order survive. Hop-by-hop fields, fields named by Connection, `expect`
 * (the proxy answers 100-continue itself), client-sent `x-ficus-*` and untrusted forwarding
 * fields are dropped, and so are the `secret` ones (a preview token is for ficus alone);
 * `host`, `x-request-id` and the forwarding fields are then set. Framing
 * (Content-Length, or chunked when the body has none) is redone by undici.
 */
export function upstreamRequestHeaders(req: IncomingMessage, ctx: ForwardingContext): string[] {
  const raw = req.rawHeaders;
  const named = connectionTokens(req.headers.connection);
  const secret = ctx.secret;
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let forwarded: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (named?.has(lower)) continue;
    if (FORWARDING.has(lower)) {
      if (!ctx.trusted) continue;
      if (lower === 'x-forwarded-for') forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
      else if (lower === 'x-forwarded-proto') forwardedProto ??= value;
      else if (lower === 'x-forwarded-host') forwardedHost ??= value;
      else forwarded = forwarded ? `${forwarded}, ${value}` : value;
      continue;
    }
    const dashed = lower.includes('_') ? lower.replaceAll('_', '-') : lower;
    if (proxyTold(dashed) && !(ctx.trusted && dashed === lower)) continue;
    // CGI, WSGI and Rack read `X_Forwarded_For` as `X-Forwarded-For`: ficus's own fields are
    // dropped in either spelling, as nginx drops underscored names by default.
    if (ownField(dashed, secret)) continue;
    out.push(name, value);
  }
  // RFC 7239 §6: an address that cannot be told is "unknown", never an empty field.
  const peer = ctx.peer.startsWith('::ffff:') ? ctx.peer.slice(7) : ctx.peer || 'unknown';
  const forNode = peer.includes(':') ? `"[${peer}]"` : peer;
  const hostValue = ctx.hostOverride ?? ctx.host;
  // Without any Host (an HTTP/1.0 client), undici sends the endpoint's own.
  if (hostValue) out.push('host', hostValue);
  out.push(
    'x-request-id', ctx.requestId,
    'x-forwarded-for', forwardedFor ? `${forwardedFor}, ${peer}` : peer,
    // X-Forwarded-Proto names the scheme the original client used; Forwarded's element names
    // this hop's, and the edge listener speaks plain HTTP.
    'x-forwarded-proto', forwardedProto ?? 'http',
  );
  // Without a Host (an HTTP/1.0 client) there is no host to tell: none rather than an empty one.
  const xfh = forwardedHost ?? ctx.host;
  if (xfh) out.push('x-forwarded-host', xfh);
  // A trusted proxy that told its hops in X-Forwarded-* only: those hops go first in Forwarded
  // too, or a reader of Forwarded's first element (Spring) would take ficus's own hop for the
  // client's, its address and scheme (RFC 7239 §7.4).
  const earlier = forwarded ?? (ctx.trusted ? elementsFromX(forwardedFor, forwardedProto, forwardedHost) : undefined);
  // `proto` before `host`: a reader that looks for `proto=` without parsing quotes must find
  // ficus's, never one inside a quoted Host (`host="x;proto=https"`).
  out.push('forwarded', `${earlier ? `${earlier}, ` : ''}for=${forNode};proto=http${ctx.host ? `;host=${quoteIfNeeded(ctx.host)}` : ''}`);
  return out;
}

/** RFC 7239 elements standing for what a trusted proxy told in X-Forwarded-For/-Proto/-Host; undefined when it told no address. */
function elementsFromX(forwardedFor: string | undefined, proto: string | undefined, host: string | undefined): string | undefined {
  if (forwardedFor === undefined) return undefined;
  const nodes = forwardedFor.split(',').map((part) => part.trim()).filter((part) => part !== '');
  if (nodes.length === 0) return undefined;
  return nodes
    .map((node, i) => {
      let element = `for=${forwardedNode(node)}`;
      // Of a list (one per hop), the first: the scheme and Host the client asked for.
      const scheme = i === 0 ? proto?.split(',')[0]?.trim() : undefined;
      if (scheme && TOKEN.test(scheme)) element += `;proto=${scheme}`;
      const firstHost = i === 0 ? host?.split(',')[0]?.trim() : undefined;
      if (firstHost) element += `;host=${quoteIfNeeded(firstHost)}`;
      return element;
    })
    .join(', ');
}

const OBFUSCATED = /^_[A-Za-z0-9._-]+$/;
const PORT = /^(?:\d{1,5}|_[A-Za-z0-9._-]+)$/;

/**
 * One X-Forwarded-For entry as an RFC 7239 §6 node (`1.2.3.4`, `"1.2.3.4:5678"`, `"[2001:db8::1]"`,
 * `"[2001:db8::1]:443"`, `unknown`, `_obf`), or `unknown` for anything else: the leftmost entries
 * are the client's own words, and must never add parameters to the element (`proto=`, `host=`).
 */
function forwardedNode(raw: string): string {
  const node = raw.startsWith('::ffff:') && isIPv4(raw.slice(7)) ? raw.slice(7) : raw;
  if (isIPv6(node)) return `"[${node}]"`;
  if (isIPv4(node) || node.toLowerCase() === 'unknown' || OBFUSCATED.test(node)) return node;
  const bracketed = /^\[([^\]]+)\](?::(.+))?$/.exec(node);
  if (bracketed && isIPv6(bracketed[1] as string) && (bracketed[2] === undefined || PORT.test(bracketed[2]))) return `"${node}"`;
  const colon = node.lastIndexOf(':');
  if (colon > 0) {
    const name = node.slice(0, colon);
    if ((isIPv4(name) || OBFUSCATED.test(name) || name.toLowerCase() === 'unknown') && PORT.test(node.slice(colon + 1))) return `"${node}"`;
  }
  return 'unknown';
}

/** A name ficus sets, drops or keeps for itself (with `_` already read as `-`): never copied from the client. */
function ownField(name: string, secret: readonly string[] | undefined): boolean {
  return DROPPED.has(name) || FORWARDING.has(name) || name.startsWith('x-ficus-') || name.startsWith('proxy-') || secret?.includes(name) === true;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const QUOTED_SPECIALS = /["\\]/g;

/** RFC 7239 §4: a value that is not a token (a host with its port, say) is a quoted-string. */
function quoteIfNeeded(value: string): string {
  if (TOKEN.test(value)) return value;
  // A Host that passed the edge's check holds neither: no escaping pass for it.
  return value.includes('"') || value.includes('\\') ? `"${value.replace(QUOTED_SPECIALS, '\\$&')}"` : `"${value}"`;
}

/** Raw response fields, flat: buffers from undici's dispatcher, strings from node:http or `request()`. */
export type RawFields = readonly (Buffer | string)[];

/** One raw field as text (HTTP field bytes are latin1). */
export function fieldText(field: Buffer | string): string {
  return typeof field === 'string' ? field : field.toString('latin1');
}

/**
 * Response headers for the client from an upstream's raw fields, minus hop-by-hop fields and
 * those the upstream's Connection names. Returns a flat [name, value, …] array.
 */
export function clientResponseHeaders(raw: RawFields): string[] {
  const out: string[] = [];
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = fieldText(raw[i] as Buffer | string);
    const lower = name.toLowerCase();
    // Proxy-*: meant for the next client on the chain (Proxy-Authentication-Info, RFC 9110 §11.7.3), never ours to relay.
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-')) {
      if (lower === 'connection') {
        const tokens = connectionTokens(fieldText(raw[i + 1] as Buffer | string));
        if (tokens) named = named ? new Set([...named, ...tokens]) : tokens;
      }
      continue;
    }
    out.push(name, fieldText(raw[i + 1] as Buffer | string));
  }
  // Rare: the upstream's Connection names fields of its own, which may come before or after it.
  if (named !== undefined) {
    for (let i = out.length - 2; i >= 0; i -= 2) if (named.has((out[i] as string).toLowerCase())) out.splice(i, 2);
  }
  return out;
}

/**
 * Removes Content-Length from flat fields: a 204 and a 1xx must not carry one (RFC 9110 §8.6),
 * and a lax client might read a body by it.
 */
export function dropContentLength(fields: string[]): void {
  for (let i = fields.length - 2; i >= 0; i -= 2) {
    if ((fields[i] as string).toLowerCase() === 'content-length') fields.splice(i, 2);
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,200}$/;

/** A client-sent X-Request-Id is kept when it is one plausible token, else replaced. */
export function acceptRequestId(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && REQUEST_ID.test(value) ? value : undefined;
}
