import type { ShadowDef } from '../config/snapshot.js';
import { BodyCapture } from './body-capture.js';
import { diffJson, type JsonDifference } from './json-diff.js';
import { JsonIgnore } from './json-path.js';
import { comparableHeaders, differingHeaders, rawHeader, type RawHeaders } from './response-headers.js';

/** One side's complete answer: status, raw header buffers as undici gives them, body capture. */
export interface Answer {
  readonly status: number;
  readonly rawHeaders: RawHeaders;
  readonly body: BodyCapture;
}

export type BodyDifference =
  | { readonly kind: 'json'; readonly differences: readonly JsonDifference[]; readonly truncated: boolean }
  /** Not both JSON (or not parseable): sizes and keyed digests, never the bytes. */
  | { readonly kind: 'bytes'; readonly primary: BytesSummary; readonly shadow: BytesSummary };

export interface BytesSummary {
  readonly bytes: number;
  readonly digest: string;
}

/** What differs; only names, paths, types, sizes and digests — nothing a user sent or owns. */
export interface Difference {
  /** Both, for context, whether or not they differ. */
  readonly status: { readonly primary: number; readonly shadow: number };
  readonly headers: readonly string[];
  readonly body?: BodyDifference;
}

export type Verdict =
  | { readonly result: 'match' }
  /** A body over maxBodyBytes: too big to judge within bounded memory. */
  | { readonly result: 'skipped' }
  | { readonly result: 'mismatch'; readonly difference: Difference };

/** Compiled once per definition: a reload builds new definitions, and the old entries go with them. */
const ignores = new WeakMap<ShadowDef, JsonIgnore>();

function ignoreOf(def: ShadowDef): JsonIgnore {
  let ignore = ignores.get(def);
  if (ignore === undefined) ignores.set(def, (ignore = new JsonIgnore(def.ignoreJsonPaths)));
  return ignore;
}

/** Starts reading one side's body as its head arrives. */
export function captureBody(rawHeaders: RawHeaders, def: ShadowDef): BodyCapture {
  return new BodyCapture(rawHeader(rawHeaders, 'content-type'), rawHeader(rawHeaders, 'content-encoding'), def.maxBodyBytes);
}

/**
 * Status equal, comparable headers equal, bodies equal: structurally when both are JSON (key
 * order ignored, `ignoreJsonPaths` left out), byte for byte (by digest) otherwise. `hidden`:
 * keys never to be written in a JSON path of the difference (the caller's own id).
 */
export function compareAnswers(primary: Answer, shadow: Answer, def: ShadowDef, hidden?: ReadonlySet<string>): Verdict {
  if (primary.body.overflow || shadow.body.overflow) return { result: 'skipped' };
  const body = compareBodies(primary.body, shadow.body, def, hidden);
  if (body === 'skipped') return { result: 'skipped' };
  const headers = differingHeaders(comparableHeaders(primary.rawHeaders, def.ignoreHeaders), comparableHeaders(shadow.rawHeaders, def.ignoreHeaders));
  const statusDiffers = primary.status !== shadow.status;
  if (!statusDiffers && headers.length === 0 && body === undefined) return { result: 'match' };
  return {
    result: 'mismatch',
    difference: {
      status: { primary: primary.status, shadow: shadow.status },
      headers,
      ...(body === undefined ? {} : { body }),
    },
  };
}

function compareBodies(primary: BodyCapture, shadow: BodyCapture, def: ShadowDef, hidden: ReadonlySet<string> | undefined): BodyDifference | undefined | 'skipped' {
  if (primary.json && shadow.json) {
    const a = primary.parse();
    const b = shadow.parse();
    if ((!a.ok && a.tooLarge) || (!b.ok && b.tooLarge)) return 'skipped';
    if (a.ok && b.ok) {
      try {
        const diff = diffJson(a.value, b.value, ignoreOf(def), undefined, hidden);
        return diff.differences.length === 0 ? undefined : { kind: 'json', differences: diff.differences, truncated: diff.truncated };
      } catch {
        // Nesting deep enough to exhaust the stack: the bytes still say whether they are equal.
      }
    }
  }
  const da = primary.digest();
  const db = shadow.digest();
  if (primary.decodedTooLarge || shadow.decodedTooLarge) return 'skipped';
  if (da === db) return undefined;
  return { kind: 'bytes', primary: summary(primary, da), shadow: summary(shadow, db) };
}

/** A 64-bit prefix of the keyed digest tells bodies apart in a log line; the rest is length. */
function summary(body: BodyCapture, digest: string): BytesSummary {
  return { bytes: body.bytes, digest: digest.slice(0, 16) };
}
