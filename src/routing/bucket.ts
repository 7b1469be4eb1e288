/**
 * Deterministic bucketing (SPEC §1.3): `bucket = murmur3_32(seed + ":" + user) mod 10000`, and a
 * user is inside percentage p when `bucket < p × 100`. Because the bucket does not depend on p,
 * raising a percentage only ever adds users (1 % ⊂ 5 % ⊂ 30 %), and every replica agrees.
 *
 * The hash reads the UTF-8 bytes of its text, as services behind the facade hashing the same
 * user with any MurmurHash3 library do. It is computed straight from the string's code units,
 * so a routing decision allocates neither an encoded copy nor the joined `seed:user` string.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** MurmurHash3 x86 32-bit (Austin Appleby, public domain) over raw bytes. */
export function murmur3Bytes(bytes: Uint8Array, seed = 0): number {
  begin(seed);
  for (const byte of bytes) push(byte);
  return end();
}

/** MurmurHash3 x86 32-bit over the UTF-8 bytes of `text` (lone surrogates as U+FFFD, as TextEncoder). */
export function murmur3(text: string, seed = 0): number {
  begin(seed);
  pushUtf8(text);
  return end();
}

export const BUCKETS = 10_000;

export function bucketOf(seed: string, user: string): number {
  begin(0);
  pushUtf8(seed);
  push(0x3a /* : */);
  pushUtf8(user);
  return end() % BUCKETS;
}

/**
 * How many buckets `percent` (0..100, decimals allowed) covers: `bucket < p × 100` for the
 * decimal the operator wrote. `0.07 * 100` is 7.000000000000001 in binary floating point, which
 * would let bucket 7 in; the epsilon removes that error (far below the 0.01 % a bucket is worth)
 * and keeps the count monotonic in p, so raising a percentage still never drops anyone.
 */
export function bucketsWithin(percent: number): number {
  return Math.max(0, Math.min(BUCKETS, Math.ceil(percent * 100 - 1e-9)));
}

/** Whether `user` falls inside `percent` (0..100, decimals allowed) for this seed. */
export function inPercent(seed: string, user: string, percent: number): boolean {
  return bucketOf(seed, user) < bucketsWithin(percent);
}

// The running hash state. Hashing is synchronous and never re-entered, so one module-level
// state serves every call without allocating.
let h = 0;
let k = 0;
let n = 0;

function begin(seed: number): void {
  h = seed >>> 0;
  k = 0;
  n = 0;
}

function push(byte: number): void {
  k |= byte << ((n & 3) << 3);
  n++;
  if ((n & 3) === 0) {
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    k = 0;
  }
}

function pushUtf8(text: string): void {
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      push(c);
    } else if (c < 0x800) {
      push(0xc0 | (c >> 6));
      push(0x80 | (c & 0x3f));
    } else if (c < 0xd800 || c > 0xdfff) {
      push(0xe0 | (c >> 12));
      push(0x80 | ((c >> 6) & 0x3f));
      push(0x80 | (c & 0x3f));
    } else {
      const low = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
        push(0xf0 | (c >> 18));
        push(0x80 | ((c >> 12) & 0x3f));
        push(0x80 | ((c >> 6) & 0x3f));
        push(0x80 | (c & 0x3f));
      } else {
        // WHATWG encode: an unpaired surrogate becomes U+FFFD.
        push(0xef);
        push(0xbf);
        push(0xbd);
      }
    }
  }
}

function end(): number {
  if ((n & 3) !== 0) {
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
