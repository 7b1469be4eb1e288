import { createHmac, randomBytes, type Hmac } from 'node:crypto';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { markLongNumbers, reviveLongNumbers } from './long-numbers.js';

/**
 * Digests are keyed with a secret drawn at start: equal bodies still get equal digests within
 * one process (all a comparison and its log need), but a logged digest of a short body (a
 * PIN, a yes/no) cannot be reversed by hashing guesses.
 */
const DIGEST_KEY = randomBytes(32);

export type ParsedBody = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly tooLarge: boolean };

/**
 * One side's response body, read as it streams past and never held up: a JSON body's bytes are
 * kept (up to `limit`) to be parsed at the end; any other body is only digested, chunk by chunk.
 */
export class BodyCapture {
  readonly json: boolean;
  bytes = 0;
  /** The body was longer than `limit`: it is not compared. */
  overflow = false;
  #chunks: Buffer[] | undefined;
  #hmac: Hmac | undefined;
  #digest: string | undefined;

  constructor(
    contentType: string,
    private readonly encoding: string,
    private readonly limit: number,
  ) {
    this.json = isJsonMediaType(contentType);
    // A compressed body is kept too, to be digested decoded: two services that compress the
    // same bytes differently (another level, another library) still serve the same body.
    if (this.json || DECODABLE.has(encoding)) this.#chunks = [];
    else this.#hmac = createHmac('sha256', DIGEST_KEY);
  }

  /** False once the body is over the limit: nothing more is kept or digested. */
  add(chunk: Buffer): boolean {
    if (this.overflow) return false;
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      this.overflow = true;
      this.#chunks = undefined;
      this.#hmac = undefined;
      return false;
    }
    if (this.#chunks !== undefined) this.#chunks.push(chunk);
    else this.#hmac?.update(chunk);
    return true;
  }

  /** Decoded past `limit`: its digest says nothing, and the body is not compared. */
  decodedTooLarge = false;

  /** Hex digest of the body, decoded when it is gzip, deflate or br (as received when it cannot be decoded). */
  digest(): string {
    if (this.#digest !== undefined) return this.#digest;
    const hmac = this.#hmac ?? createHmac('sha256', DIGEST_KEY);
    if (this.#chunks !== undefined) {
      let decoded: Buffer | undefined;
      if (DECODABLE.has(this.encoding)) {
        try {
          decoded = decode(Buffer.concat(this.#chunks), this.encoding, this.limit);
        } catch (error) {
          this.decodedTooLarge = (error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE';
        }
      }
      if (decoded !== undefined) hmac.update(decoded);
      else for (const chunk of this.#chunks) hmac.update(chunk);
    }
    this.#hmac = undefined;
    return (this.#digest = hmac.digest('hex'));
  }

  /**
   * The JSON value, decoded first when compressed: two services that compress differently
   * still serve the same document. Decompression is capped at `limit` (a small body can
   * inflate to gigabytes).
   */
  parse(): ParsedBody {
    if (this.#chunks === undefined) return { ok: false, tooLarge: this.overflow };
    let bytes: Buffer;
    try {
      const decoded = decode(Buffer.concat(this.#chunks), this.encoding, this.limit);
      if (decoded === undefined) return { ok: false, tooLarge: false };
      bytes = decoded;
    } catch (error) {
      return { ok: false, tooLarge: (error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' };
    }
    try {
      return { ok: true, value: JSON.parse(markLongNumbers(bytes.toString('utf8')), reviveLongNumbers) as unknown };
    } catch {
      return { ok: false, tooLarge: false };
    }
  }
}

/** `application/json` and any `+json` suffix type (RFC 6839), parameters ignored. */
export function isJsonMediaType(contentType: string): boolean {
  const semi = contentType.indexOf(';');
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

const DECODABLE = new Set(['gzip', 'x-gzip', 'deflate', 'br']);

function decode(bytes: Buffer, encoding: string, limit: number): Buffer | undefined {
  switch (encoding) {
    case '':
    case 'identity':
      return bytes;
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(bytes, { maxOutputLength: limit });
    case 'deflate':
      return inflateSync(bytes, { maxOutputLength: limit });
    case 'br':
      return brotliDecompressSync(bytes, { maxOutputLength: limit });
    default:
      // Stacked or unknown codings: compared by digest instead.
      return undefined;
  }
}
