import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isAlias, isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Scalar, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { substituteEnv } from './env.js';
import { besideConfig } from './paths.js';
import type { ConfigIssue } from './issues.js';
import { RoutesFile } from './schema.js';
import { crossCheck, type Running } from './validate.js';

export type LoadResult =
  | { ok: true; file: string; hash: string; config: RoutesFile; fromEnv: ReadonlySet<string> }
  | { ok: false; file: string; hash: string; issues: ConfigIssue[] };

type Path = readonly (string | number)[];
type At = (offset: number, path: string, message: string) => ConfigIssue;

/**
 * The largest routes file read. A file takes over a hundred times its size in memory while it
 * is parsed and checked, and a reload blocks the loop for as long: 16 MiB is some 40,000 routes.
 */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;

export async function loadRoutesFile(file: string, env: NodeJS.ProcessEnv = process.env, running?: Running): Promise<LoadResult> {
  let bytes: Buffer;
  try {
    const { size } = await stat(file);
    if (size > MAX_FILE_BYTES) {
      return { ok: false, file, hash: '', issues: [{ file, line: 1, col: 1, path: '', message: `the file is ${size} bytes, more than the ${MAX_FILE_BYTES} ficus reads (a routes file that large would take gigabytes to load)` }] };
    }
    bytes = await readFile(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    return { ok: false, file, hash: '', issues: [{ file, line: 1, col: 1, path: '', message: `cannot read file (${reason})` }] };
  }
  const text = bytes.toString('utf8');
  // A byte that is not UTF-8 would otherwise become U+FFFD in a value, silently: a header
  // condition that can never match, a body that is not what was written.
  const invalid = firstInvalidUtf8(bytes);
  // Hashed as bytes: decoded, two different files (one with a bad byte, one with U+FFFD written
  // where it was) would be the same text, and the fixed one would be skipped as already seen.
  // For UTF-8 the hashes agree: contentHash hashes the text's UTF-8 bytes.
  if (invalid !== undefined) return { ok: false, file, hash: bytesHash(bytes), issues: [{ file, ...invalid, path: '' }] };
  return parseRoutes(text, file, env, running);
}

function firstInvalidUtf8(bytes: Buffer): { line: number; col: number; message: string } | undefined {
  if (isUtf8(bytes)) return undefined;
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return { line: 1, col: 1, message: 'the file is UTF-16 text: save it as UTF-8' };
  }
  const bad = firstBadByte(bytes);
  if (bad === -1) return undefined;
  // Linear: the line is counted up to the bad byte, and its column as the text before it decodes.
  const lineStart = bad === 0 ? 0 : bytes.lastIndexOf(0x0a, bad - 1) + 1;
  let line = 1;
  for (let at = bytes.indexOf(0x0a); at !== -1 && at < lineStart; at = bytes.indexOf(0x0a, at + 1)) line++;
  return { line, col: bytes.subarray(lineStart, bad).toString('utf8').length + 1, message: 'a byte here is not UTF-8: save the file as UTF-8' };
}

/** The offset of the first byte that starts no well-formed UTF-8 sequence, or -1. */
function firstBadByte(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i] as number;
    const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > bytes.length || (n > 1 && !isUtf8(bytes.subarray(i, i + n)))) return i;
    i += n;
  }
  return -1;
}

/** The config hash: of the file's text, before env substitution. */
export function contentHash(text: string): string {
  return bytesHash(text);
}

/** The same hash from the file's bytes: equal to `contentHash` of valid UTF-8, and still telling apart bytes that are not. */
export function bytesHash(bytes: Buffer | string): string {
  // A string is hashed as its UTF-8 bytes.
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

/**
 * Parses, substitutes env, validates the schema and the cross references, and reports every
 * issue at once: an operator fixing a file should not discover its errors one reload at a time.
 * `running` is what a reload cannot change in the process it would reload.
 */
export function parseRoutes(text: string, file: string, env: NodeJS.ProcessEnv = process.env, running?: Running): LoadResult {
  try {
    return parseChecked(text, file, env, running);
  } catch (error) {
    // A file nested thousands deep passes the parser, then overflows the stack of a later
    // recursive pass: it is a rejected file, never an exception that takes the proxy down.
    const why = error instanceof RangeError ? 'the document is nested too deeply' : (error as Error).message;
    return { ok: false, file, hash: contentHash(text), issues: [{ file, line: 1, col: 1, path: '', message: `cannot read the document: ${why}` }] };
  }
}

function parseChecked(text: string, file: string, env: NodeJS.ProcessEnv, running: Running | undefined): LoadResult {
  const hash = contentHash(text);
  // A byte-order mark is no character of line 1: columns there count from after it.
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const lineCounter = new LineCounter();
  // Duplicate keys are found below, in one pass: the parser's own check is quadratic in a
  // map's size, and stops every other error from being reported.
  const doc = parseDocument(source, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const at: At = (offset, path, message) => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col, path, message };
  };
  const fail = (issues: ConfigIssue[]): LoadResult => ({ ok: false, file, hash, issues });

  if (doc.errors.length > 0) return fail(syntaxIssues(doc, source, at));

  keysAsWritten(doc);
  const issues: ConfigIssue[] = [...unresolvedAliases(doc, at), ...duplicateKeys(doc, at)];
  const envPaths = new Set<string>();
  // Where a value came from the environment, its error says so: the file shows only the reference.
  const fromEnv = new Map<string, string>();
  const substituted = (node: Scalar, written: string) => fromEnv.set(pathAt(doc, node.range?.[0] ?? 0).join('.'), written);
  for (const problem of substituteEnv(doc, env, substituted)) {
    const path = pathAt(doc, problem.node.range?.[0] ?? 0).join('.');
    envPaths.add(path);
    issues.push(at(problem.node.range?.[0] ?? 0, path, problem.message));
  }

  let raw: unknown;
  if (issues.some((issue) => issue.message.startsWith('alias *'))) return fail(issues);
  try {
    // yaml's own guard (maxAliasCount) multiplies the uses of an anchor by the aliases inside it:
    // a list reused on 100 routes inside a block reused on 100 others is refused as an attack.
    // What is bounded instead: the number of aliases, which yaml resolves in time quadratic in
    // it, and the expanded size, which an alias bomb inflates.
    const { aliases, size } = expansion(doc, MAX_EXPANDED_VALUES);
    if (aliases > MAX_ALIASES) {
      return fail([...issues, at(0, '', `the document has ${aliases} aliases, more than the ${MAX_ALIASES} ficus expands (each costs a scan of all those before it); write the repeated values out, or reuse fewer`)]);
    }
    if (size > MAX_EXPANDED_VALUES) {
      return fail([...issues, at(0, '', `cannot expand the document: its aliases expand to more than ${MAX_EXPANDED_VALUES} values (an alias bomb, or an alias inside its own anchor)`)]);
    }
    raw = doc.toJS({ maxAliasCount: -1 }) ?? {};
  } catch (error) {
    // An alias bomb ("billion laughs") is refused here rather than expanded.
    return fail([...issues, at(0, '', `cannot expand the document: ${(error as Error).message}`)]);
  }

  const parsed = RoutesFile.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      // A missing variable left its `${env:…}` text in place; the type error that follows is the same mistake.
      for (const located of locateZodIssue(doc, issue, [], at)) {
        if (envPaths.has(located.path)) continue;
        const written = fromEnv.get(located.path);
        issues.push(written === undefined ? located : { ...located, message: `${located.message} (the value of ${written})` });
      }
    }
  }
  for (const problem of crossCheck(raw, running)) {
    const node = problem.atKey ? keyOf(doc, problem.path) : undefined;
    issues.push(at(node ?? nearestNode(doc, problem.path).offset, problem.path.join('.'), problem.message));
  }
  issues.push(...writtenFiles(doc, raw, file, at));
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  if (issues.length > 0 || !parsed.success) return fail(issues);
  return { ok: true, file, hash, config: parsed.data, fromEnv: new Set(fromEnv.keys()) };
}

/**
 * One issue per line and per parser position: after an error the parser's recovery mostly
 * reports consequences of it, which would bury the real mistake.
 */
function syntaxIssues(doc: Document, text: string, at: At): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const positions = new Set<number>();
  let unquotedEnv = false;
  for (const error of doc.errors) {
    const known = knownSyntaxError(doc, error, text);
    // An unquoted `${env:…}` in a flow collection derails the rest of the parse: report only those.
    if (unquotedEnv && known?.kind !== 'env') continue;
    unquotedEnv ||= known?.kind === 'env';
    const message = known?.message ?? `YAML syntax error: ${error.message.split('\n')[0]?.replace(/ at line \d+, column \d+.*$/, '')}`;
    const issue = at(known?.offset ?? error.pos[0], known?.path ?? '', message);
    if (!positions.has(error.pos[0]) && !issues.some((seen) => seen.line === issue.line)) issues.push(issue);
    positions.add(error.pos[0]);
  }
  return issues;
}

/** Syntax errors with a better explanation or position than the parser's; the tree is a guess after an error. */
function knownSyntaxError(doc: Document, error: YAMLError, text: string): { kind: string; offset: number; path: string; message: string } | undefined {
  const offset = error.pos[0];
  // `{ port: ${env:PORT} }`: in flow collections "{" and "}" are YAML syntax, so the reference must be quoted.
  if (text.startsWith('${env:', offset - 1)) {
    return { kind: 'env', offset: offset - 1, path: pathAt(doc, offset).join('.'), message: 'inside { } or [ ], write "${env:…}" in quotes (YAML syntax), or move the key to a line of its own (block style) where a number must stay a number' };
  }
  if (error.code === 'MULTIPLE_DOCS') {
    return { kind: 'documents', offset, path: '', message: 'YAML syntax error: a routes file is one YAML document; remove this "---" and what follows it, or merge it into the first' };
  }
  // The parser notices a missing closing quote only at the end of the file; point at the opening one.
  if (error.code === 'MISSING_CHAR' && /quote/.test(error.message)) {
    return { kind: 'quote', offset: openQuoteBefore(doc, offset), path: '', message: 'YAML syntax error: quoted string is never closed' };
  }
  return undefined;
}

function openQuoteBefore(doc: Document, end: number): number {
  let start = end;
  visit(doc, {
    Scalar(_key, node) {
      if (node.type !== 'PLAIN' && node.range?.[1] === end) start = node.range[0];
    },
  });
  return start;
}

function locateZodIssue(doc: Document, issue: z.core.$ZodIssue, base: Path, at: At): ConfigIssue[] {
  const path = [...base, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const offset = keyOf(doc, [...path, key]) ?? nearestNode(doc, path).offset;
        // YAML 1.1's merge key, which YAML 1.2 (and so ficus) reads as a plain key.
        if (key === '<<') return at(offset, [...path, key].join('.'), 'merge keys (<<: *name) are not supported: write the keys out, or make the whole value an alias (key: *name)');
        return at(offset, [...path, key].join('.'), `unknown key "${key}"`);
      });
    case 'invalid_key': {
      const offset = keyOf(doc, path) ?? nearestNode(doc, path).offset;
      const reason = issue.issues.map((inner) => humanise(inner.message)).join('; ');
      return [at(offset, path.join('.'), `invalid name "${String(path.at(-1))}": ${reason}`)];
    }
    case 'invalid_union': {
      // A header condition is a string or { regex }: explain the branch the value was written as.
      const shaped = issue.errors.filter((branch) => !branch.some((inner) => inner.code === 'invalid_type' && inner.path.length === 0));
      if (shaped.length === 1) return (shaped[0] ?? []).flatMap((inner) => locateZodIssue(doc, inner, path, at));
      const expected = issue.errors.flat().flatMap((inner) => (inner.code === 'invalid_type' && inner.path.length === 0 ? [inner.expected] : []));
      return [at(nearestNode(doc, path).offset, path.join('.'), `expected ${expected.join(' or ')}`)];
    }
  }
  if (issue.code === 'too_big' || issue.code === 'too_small') return [at(nearestNode(doc, path).offset, path.join('.'), sizeMessage(issue))];
  // Zod issues name input paths, so one the document does not hold is a key left out.
  const node = nearestNode(doc, path);
  const message = node.exact || path.length === 0 ? humanise(issue.message) : `"${String(path.at(-1))}" is required`;
  return [at(node.offset, path.join('.'), message)];
}

function sizeMessage(issue: z.core.$ZodIssueTooBig | z.core.$ZodIssueTooSmall): string {
  const big = issue.code === 'too_big';
  const limit = big ? issue.maximum : issue.minimum;
  const bound = `${big ? 'at most' : 'at least'} ${String(limit)}`;
  const strict = issue.inclusive === false ? `${big ? 'less' : 'more'} than ${String(limit)}` : bound;
  if (issue.origin === 'array') return `needs ${bound} item(s)`;
  if (issue.origin === 'string') return `needs ${bound} character(s)`;
  return `must be ${strict}`;
}

function humanise(message: string): string {
  return message.replace(/^Invalid input: /, '');
}

/** The node at `path`, or its deepest existing ancestor when the key is missing. */
function nearestNode(doc: Document, path: Path): { offset: number; exact: boolean } {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return { offset: node.range[0], exact: depth === path.length };
  }
  return { offset: 0, exact: false };
}

/** Where the key of the last path element is written, so that errors about a key point at it. */
function keyOf(doc: Document, path: Path): number | undefined {
  const key = path.at(-1);
  const parent = path.length <= 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
  if (key === undefined || !isMap(parent)) return undefined;
  for (const pair of parent.items) {
    if (isScalar(pair.key) && String(pair.key.value) === String(key)) return pair.key.range?.[0];
  }
  return undefined;
}

/**
 * The files ficus writes (`auditLog`, `stateFile`, relative to the routes file's directory)
 * must be neither the routes file, which every write would reload and break, nor each other.
 */
function writtenFiles(doc: Document, raw: unknown, file: string, at: At): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const config = (raw ?? {}) as Record<string, unknown>;
  const claimed = new Map<string, string>([[resolve(file), 'the routes file itself']]);
  for (const key of ['auditLog', 'stateFile']) {
    const value = config[key];
    const path = typeof value === 'string' ? besideConfig(file, value) : undefined;
    if (path === undefined) continue;
    const other = claimed.get(path);
    if (other !== undefined) issues.push(at(nearestNode(doc, [key]).offset, key, `${value} is ${other}; give it a file of its own`));
    else claimed.set(path, `the ${key} too`);
  }
  return issues;
}

/**
 * A key written twice in one map, compared as the config reads it: `1:` and `"1":` are one
 * name once the file is a JSON object, and the later would silently win.
 */
function duplicateKeys(doc: Document, at: At): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const name = String(pair.key.value);
        if (!seen.has(name)) seen.add(name);
        else if (pair.key.range) issues.push(at(pair.key.range[0], pathAt(doc, pair.key.range[0]).join('.'), 'duplicate key'));
      }
    },
  });
  return issues;
}

/**
 * A name is what the file says: `1.50:`, `0x1F:`, `null:` or `~:` are the names "1.50", "0x1F",
 * "null" and "~", not the number, or the empty string, YAML 1.2 would make of them (errors and
 * references would otherwise speak of "1.5", "31" and "").
 */
function keysAsWritten(doc: Document): void {
  visit(doc, {
    Pair(_, pair) {
      const written = plainKeySource(pair.key);
      if (written !== undefined && isScalar(pair.key)) pair.key.value = written;
    },
  });
}

/** The text of a plain key YAML reads as something other than a string (`1.50`, `0x1F`, `null`). */
export function plainKeySource(key: unknown): string | undefined {
  return isScalar(key) && key.type === 'PLAIN' && typeof key.value !== 'string' && typeof key.source === 'string' ? key.source : undefined;
}

/** yaml resolves each alias by scanning every one before it: 10,000 take about half a second, 40,000 some 18 s. */
const MAX_ALIASES = 10_000;

/** Far more than any routes file holds once expanded (10,000 routes are about 200,000), far fewer than an alias bomb's. */
const MAX_EXPANDED_VALUES = 5_000_000;

/**
 * The document's aliases, and how many values it holds once every alias is expanded (an alias
 * counts as the anchor's value it names: the last one written before it), stopping past
 * `limit`. One walk, linear: each node's size is computed once.
 */
function expansion(doc: Document, limit: number): { aliases: number; size: number } {
  const targets = new Map<unknown, unknown>();
  const anchors = new Map<string, unknown>();
  visit(doc, (_, node) => {
    if (isAlias(node)) targets.set(node, anchors.get(node.source));
    else if (isNode(node) && node.anchor) anchors.set(node.anchor, node);
  });
  const sizes = new Map<unknown, number>();
  const size = (node: unknown): number => {
    if (isAlias(node)) return size(targets.get(node));
    const known = sizes.get(node);
    if (known !== undefined) return known;
    // An alias inside the node its anchor names would expand forever.
    sizes.set(node, Infinity);
    let n = 1;
    if (isMap(node) || isSeq(node)) {
      for (const item of node.items as unknown[]) {
        n += isPair(item) ? size(item.key) + size(item.value) : size(item);
        if (n > limit) break;
      }
    }
    sizes.set(node, n);
    return n;
  };
  return { aliases: targets.size, size: size(doc.contents) };
}

/** `*name` without an `&name` before it: reported where it is written, not at 1:1. */
function unresolvedAliases(doc: Document, at: At): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  // One pass in document order: `alias.resolve(doc)` walks the whole document for each alias,
  // which is quadratic (seconds of blocked event loop for a file with a thousand aliases).
  const anchors = new Set<string>();
  visit(doc, (_, node) => {
    if (isAlias(node)) {
      if (!anchors.has(node.source)) {
        const offset = node.range?.[0] ?? 0;
        issues.push(at(offset, pathAt(doc, offset).join('.'), `alias *${node.source} names no anchor &${node.source} written before it`));
      }
    } else if (isNode(node) && node.anchor) {
      anchors.add(node.anchor);
    }
  });
  return issues;
}

/** The key path of the innermost key or value written at `offset`. */
function pathAt(doc: Document, offset: number): (string | number)[] {
  const inside = (node: unknown) => isNode(node) && node.range != null && node.range[0] <= offset && offset < node.range[2];
  const path: (string | number)[] = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && (inside(item.key) || inside(item.value)));
      if (!pair || !isScalar(pair.key)) return path;
      path.push(String(pair.key.value));
      if (inside(pair.key)) return path;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex(inside);
      if (index === -1) return path;
      path.push(index);
      node = node.items[index];
    } else {
      return path;
    }
  }
}
