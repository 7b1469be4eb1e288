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
