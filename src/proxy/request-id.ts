import { randomBytes } from 'node:crypto';

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));
const LOW = 2 ** 32;
const LAST = 2 ** 48 - 1;

/**
 * Ids for requests that came without a usable one: UUID-shaped, RFC 9562 version 8 (a layout of
 * its own), so anything that parses UUIDs takes them. The first 74 bits are random, drawn once;
 * the last 48 count requests. Unique within a process and, with overwhelming likelihood, across
 * processes and restarts; not secret, as a client-sent id never is. A `randomUUID()` per
 * request was about 2 % of a proxied request's instructions.
 */
export class RequestIds {
  #prefix: string;
  #count: number;

  /** `last`: the count the first id follows (tests start near a carry). */
  constructor(last = 0) {
    this.#prefix = prefix();
    this.#count = last;
  }

  next(): string {
    // 2^48 requests later, a fresh random part rather than an id seen before.
    if (this.#count === LAST) {
      this.#prefix = prefix();
      this.#count = 0;
    }
    const count = ++this.#count;
    const low = count % LOW;
    const high = (count - low) / LOW;
    return `${this.#prefix}${HEX[high >>> 8]}${HEX[high & 0xff]}${HEX[low >>> 24]}${HEX[(low >>> 16) & 0xff]}${HEX[(low >>> 8) & 0xff]}${HEX[low & 0xff]}`;
  }
}

/** `xxxxxxxx-xxxx-8xxx-Vxxx-`, random but for the version (8) and the variant bits (10xx in V). */
function prefix(): string {
  const hex = randomBytes(10).toString('hex');
  const variant = ((parseInt(hex.charAt(15), 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(12, 15)}-${variant}${hex.slice(16, 19)}-`;
}

/** The process's one sequence: every id ficus generates comes from it. */
export const requestIds = new RequestIds();
