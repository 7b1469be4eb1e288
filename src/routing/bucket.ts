/**
 * Deterministic bucketing (SPEC §1.3): `bucket = murmur3_32(seed + ":" + user) mod 10000`, and a
 * user is inside percentage p when `bucket < p × 100`. Because the bucket does not depend on p,
 * raising a percentage only ever adds users (1 % ⊂ 5 % ⊂ 30 %), and every replica agrees.
 */

const encoder = new TextEncoder();

/** MurmurHash3 x86 32-bit (Austin Appleby, public domain) over the UTF-8 bytes of `text`. */
export function murmur3(text: string, seed = 0): number {
  const bytes = encoder.encode(text);
  const length = bytes.length;
  const blocks = length & ~3;
  let h = seed >>> 0;
  for (let i = 0; i < blocks; i += 4) {
    let k = (bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  switch (length & 3) {
    case 3:
      k ^= (bytes[blocks + 2] as number) << 16;
    // falls through
    case 2:
      k ^= (bytes[blocks + 1] as number) << 8;
    // falls through
    case 1:
      k ^= bytes[blocks] as number;
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export const BUCKETS = 10_000;

export function bucketOf(seed: string, user: string): number {
  return murmur3(`${seed}:${user}`) % BUCKETS;
}

/** Whether `user` falls inside `percent` (0..100, decimals allowed) for this seed. */
export function inPercent(seed: string, user: string, percent: number): boolean {
  return bucketOf(seed, user) < percent * 100;
}
