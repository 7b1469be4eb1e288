import { createHash, timingSafeEqual } from 'node:crypto';

/** The digest a configured secret (admin token, preview token) is compared through. */
export function secretDigest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Compares fixed-length digests in constant time, so neither the secret's length nor the
 * position of the first wrong character shows in the response time.
 */
export function matchesSecret(offered: string, expected: Buffer): boolean {
  return timingSafeEqual(secretDigest(offered), expected);
}

const SECRET_NAME = /token|secret|passw(or)?d|authorization|api[-_]?key|credential|private|set-cookie/i;

/**
 * A field, header or parameter name whose value is taken for a secret: shown as `<redacted>`
 * wherever the running configuration is shown (`/config`, `/status`, `explain`), whose GETs
 * need no token.
 */
export function looksSecret(name: string): boolean {
  return SECRET_NAME.test(name);
}

export const REDACTED = '<redacted>';
