import type { IncomingHttpHeaders } from 'node:http';
import type { Audience } from './audience.js';

/** What routing may look at: the request as normalized once, before any decision. */
export class RequestView {
  #query: URLSearchParams | undefined;
  /** The caller's cohorts and toggles; set before matching when the snapshot uses any. */
  audience: Audience | undefined;

  constructor(
    readonly method: string,
    /** Normalized path: the one matched and, after rewrite, the one forwarded. */
    readonly path: string,
    /** The raw query string including its leading "?", or "". Forwarded untouched. */
    readonly search: string,
    /** Lower-case host name without port. */
    readonly host: string,
    readonly headers: IncomingHttpHeaders,
  ) {}

  get query(): URLSearchParams {
    this.#query ??= new URLSearchParams(this.search);
    return this.#query;
  }
}

/**
 * `Host: Example.COM:8080` → `example.com`; `[::1]:80` → `[::1]`. The fully qualified form,
 * `example.com.`, names the same host (RFC 1034 §3.1): its one trailing dot goes, as nginx
 * drops it, so that a `host:` rule cannot be walked around with a dot.
 */
export function hostName(header: string | undefined): string {
  if (!header) return '';
  const end = header.startsWith('[') ? header.indexOf(']') + 1 : header.lastIndexOf(':');
  const name = (end > 0 ? header.slice(0, end) : header).toLowerCase();
  return name.length > 1 && name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * The header `name` (lower case) as Node parsed it, never a property every object inherits: a
 * file may name a header `constructor`, which Node's header object would otherwise answer.
 */
export function headerField(headers: IncomingHttpHeaders, name: string): string | string[] | undefined {
  return Object.hasOwn(headers, name) ? headers[name] : undefined;
}
