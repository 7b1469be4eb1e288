import { constants } from 'node:fs';
import { access, lstat, readFile, realpath } from 'node:fs/promises';
import { isAlias, isMap, isNode, isScalar, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml';
import { writeFileAtomically } from './atomic-write.js';
import { lockForEdit } from './edit-lock.js';
import type { ConfigIssue } from './issues.js';
import { parseRoutes, plainKeySource } from './load.js';
import type { RoutesFile } from './schema.js';
import { lineOf, Refusal, spliceValue, type Path, type Splice, type Value } from './splice.js';

/**
 * Operator edits of routes.yaml (`ficus cutover`, `ficus weight`, `ficus toggle`): one value
 * changed in place, everything else byte for byte as the operator wrote it.
 *
 * The yaml Document API finds the node and is the reference the result is checked against, but
 * the file is not re-serialised with `String(doc)`: that moves end-of-line comments after block
 * keys onto their own lines, squeezes the spaces that align comments, adds spaces inside flow
 * sequences and breaks long flow maps over several lines. Instead the new value is spliced into
 * the node's source range (or one `key: value` is added to its map), and the result must parse
 * to exactly what `doc.setIn` would have produced.
 */

export type EditCommand = 'cutover' | 'weight' | 'toggle';

/** As given on the command line: `ficus cutover orders green` is { cutover, orders, green }. */
export interface EditRequest {
  command: EditCommand;
  target: string;
  value: string;
}

export interface Change {
  command: EditCommand;
  target: string;
  /** Dotted key path of the value, e.g. `services.orders.active`. */
  path: string;
  key: string;
  /** 1-based line of the value in the new file. */
  line: number;
  /** Values as YAML reads them; `from` is null when the key was not written. */
  from: Value | null;
  to: Value;
  /** As written in the file, for the one-line diff. */
  fromText: string | undefined;
  toText: string;
}

export type EditOutcome =
  | { result: 'changed'; text: string; change: Change; config: RoutesFile }
  | { result: 'unchanged'; change: Change; reason: string }
  | { result: 'refused'; message: string; issues: readonly ConfigIssue[] };

interface Plan {
  path: Path;
  /** The entry's name as the config knows it, where YAML reads it otherwise (`1.50:`). */
  name?: string;
  value: Value;
  /** The value the proxy assumes when the key is not written. */
  implied?: Value;
}

/** Applies one operator edit to the text of a routes file; pure, so every refusal is testable without files. */
export function editRoutes(text: string, file: string, request: EditRequest, env: NodeJS.ProcessEnv = process.env): EditOutcome {
  const doc = parseDocument(text, { uniqueKeys: sameName });
  if (doc.errors.length > 0) {
    const parsed = parseRoutes(text, file, env);
    return refused(`${file} is not valid YAML; fix it first (ficus check ${file})`, parsed.ok ? [] : parsed.issues);
  }
  let plan: Plan;
  let splice: Splice;
  try {
    plan = planEdit(doc, request);
    splice = spliceValue(text, doc, plan.path, plan.value);
  } catch (error) {
    if (error instanceof Refusal) return refused(error.message);
    throw error;
  }
  const key = String(plan.path.at(-1));
  const change: Change = {
    command: request.command,
    target: request.target,
    path: [...plan.path.slice(0, -2).map(String), ...(plan.name !== undefined ? [plan.name] : plan.path.slice(-2, -1).map(String)), String(plan.path.at(-1))].join('.'),
    key,
    line: lineOf(splice.text, splice.at),
    from: splice.from,
    to: plan.value,
    fromText: splice.fromText,
    toText: splice.toText,
  };
  if (splice.from === plan.value) return { result: 'unchanged', change, reason: `${key} is already ${splice.toText}` };
  if (splice.fromText === undefined && plan.implied === plan.value) {
    // Nothing was inserted after all: point at the map the key would have joined.
    const line = lineOf(text, (doc.getIn(plan.path.slice(0, -1), true) as YAMLMap).range?.[0] ?? 0);
    return { result: 'unchanged', change: { ...change, line }, reason: `${key} is not written, which means ${splice.toText}` };
  }

  // The safety net: the spliced text must read exactly as the Document edit would.
  const expected = parseDocument(text, { uniqueKeys: sameName });
  expected.setIn(plan.path, plan.value);
  const actual = parseDocument(splice.text, { uniqueKeys: sameName });
  if (actual.errors.length > 0 || JSON.stringify(actual.toJS()) !== JSON.stringify(expected.toJS())) {
    return refused(`cannot change ${change.path} in place without disturbing the rest of ${file}; edit it by hand`);
  }
  const validated = parseRoutes(splice.text, file, env);
  if (!validated.ok) return refused(`the edited ${file} would be invalid, so it was not written`, validated.issues);
  return { result: 'changed', text: splice.text, change, config: validated.config };
}

function refused(message: string, issues: readonly ConfigIssue[] = []): EditOutcome {
  return { result: 'refused', message, issues };
}

function planEdit(doc: Document, request: EditRequest): Plan {
  const { command, target, value } = request;
  switch (command) {
    case 'cutover': {
      const { node: service, path } = entry(doc, ['services'], target, 'service');
      if (value !== 'blue' && value !== 'green') throw new Refusal(`the colour must be "blue" or "green", not "${value}"`);
      if (!isMap(service) || !service.has('blue') || !service.has('green')) {
        throw new Refusal(`service "${target}" is not a blue/green service (it needs "blue", "green" and "active")`);
      }
      return { path: [...path, 'active'], name: target, value };
    }
    case 'weight': {
      const percent = parsePercent(value, 'the weight');
      const routes = doc.get('routes', true);
      const resolved = isSeq(routes) ? routes.items.map((route) => (isAlias(route) ? route.resolve(doc) : route)) : [];
      const index = resolved.findIndex((route) => isMap(route) && route.get('name') === target);
      if (index === -1) throw new Refusal(`no route named "${target}"${known(resolved.map((route) => (isMap(route) ? route.get('name') : undefined)), 'routes')}`);
      assertUnshared(doc, ['routes', index, 'canary']);
      if (!isMap(doc.getIn(['routes', index, 'canary'], true))) {
        throw new Refusal(`route "${target}" has no canary; add one first, e.g. canary: { to: SERVICE, weight: ${percent} }`);
      }
      return { path: ['routes', index, 'canary', 'weight'], value: percent };
    }
    case 'toggle': {
      const { node: toggle, path } = entry(doc, ['toggles'], target, 'toggle');
      if (!isMap(toggle)) throw new Refusal(`toggle "${target}" is not a map of settings; edit it by hand`);
      if (value === 'on' || value === 'off') return { path: [...path, 'enabled'], name: target, value: value === 'on', implied: true };
      return { path: [...path, 'percent'], name: target, value: parsePercent(value, 'the percentage (or "on"/"off")') };
    }
  }
}

/**
 * The node of `name` under the map at `at`, with its path, or a refusal listing the names there
 * are. Names are matched as written: YAML reads `123:` or `true:` as a number or a boolean, and
 * the config (a JSON object) as the name "123" or "true".
 */
function entry(doc: Document, at: Path, name: string, what: string): { node: unknown; path: Path } {
  const map = doc.getIn(at, true);
  const pairs = isMap(map) ? map.items : [];
  const index = pairs.findIndex((pair) => writtenName(pair.key) === name);
  const key = isScalar(pairs[index]?.key) ? (pairs[index].key as { value: unknown }).value : undefined;
  if (!isMap(map) || index === -1) throw new Refusal(`no ${what} named "${name}"${known(pairs.map((pair) => writtenName(pair.key)), `${what}s`)}`);
  // The Document API finds keys by YAML value, which `1.5:` and `1.50:` share.
  if (pairs.some((pair, i) => i !== index && isScalar(pair.key) && pair.key.value === key)) {
    throw new Refusal(`${what} "${name}" has a name YAML reads as another ${what}'s (${String(key)}); edit the file by hand`);
  }
  const path = [...at, key as string | number];
  assertUnshared(doc, path);
  return { node: map.get(key, true), path };
}

/** A map key as the config knows it (config/load.ts keysAsWritten): `1.50:` is "1.50", `null:` is "null". */
function writtenName(key: unknown): string | undefined {
  if (!isScalar(key)) return undefined;
  const written = plainKeySource(key);
  if (written !== undefined) return written;
  return typeof key.value === 'string' || typeof key.value === 'number' || typeof key.value === 'boolean' ? String(key.value) : undefined;
}

/** Two keys are one when the config would read them as one name (`1.5` and `1.50` are two). */
function sameName(a: unknown, b: unknown): boolean {
  const [x, y] = [writtenName(a), writtenName(b)];
  return x !== undefined && x === y;
}

/**
 * Refuses a path through a YAML anchor or alias: the node is shared, and changing it in one
 * place would change it everywhere an alias names it, or not where the operator looks.
 */
function assertUnshared(doc: Document, path: Path): void {
  let node: unknown = doc.contents;
  for (let depth = 0; ; depth++) {
    const where = path.slice(0, depth).join('.');
    if (isAlias(node)) throw new Refusal(`${where} is a YAML alias (*${node.source}): the value is shared with &${node.source}; edit the file by hand`);
    if (isNode(node) && node.anchor !== undefined) {
      throw new Refusal(`${where || 'the file'} carries the YAML anchor &${node.anchor}: a change would also change every *${node.anchor}; edit the file by hand`);
    }
    if (depth === path.length) return;
    const key = path[depth] as string | number;
    node = isMap(node) ? node.get(key, true) : isSeq(node) && typeof key === 'number' ? node.items[key] : undefined;
  }
}

function known(names: readonly unknown[], what: string): string {
  const written = names.filter((name) => typeof name === 'string' || typeof name === 'number' || typeof name === 'boolean').map(String);
  return written.length === 0 ? ` (the file has no ${what})` : ` (${what}: ${written.join(', ')})`;
}

/** 0..100, decimals allowed, an optional `%`: the SPEC's percentages. */
function parsePercent(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(text);
  const percent = match ? Number(match[1]) : Number.NaN;
  if (!(percent >= 0 && percent <= 100)) throw new Refusal(`${what} must be a number from 0 to 100, not "${text}"`);
  return percent;
}

/**
 * Edits the routes file on disk: read, edit, validate, then replace it atomically (a temp file
 * in the same directory renamed over it), so a proxy watching the file reads the old or the new
 * file and never half of one. The file keeps its mode (and, for root, its owner).
 *
 * A symbolic link is refused: in Kubernetes the file is a ConfigMap mount whose links the
 * kubelet owns and rewrites; a change belongs in the ConfigMap. An operator who does mean the
 * link's target can name it with -c.
 */
export async function editRoutesFile(file: string, request: EditRequest, env: NodeJS.ProcessEnv = process.env): Promise<EditOutcome> {
  let stats;
  try {
    stats = await lstat(file);
  } catch (error) {
    return refused(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  if (stats.isSymbolicLink()) {
    const target = await realpath(file).catch(() => 'a missing file');
    return refused(
      `${file} is a symbolic link (to ${target}), as a Kubernetes ConfigMap mount is, and cannot be edited in place. ` +
        'Change its source (for a ConfigMap: kubectl edit configmap …), or name the real file with -c if it is yours to edit',
    );
  }
  if (!stats.isFile()) return refused(`${file} is not a regular file`);
  // The new file is renamed over the old, which only the directory's permissions govern: a
  // file its owner made read-only must not be replaced behind their back.
  const denied = await access(file, constants.R_OK | constants.W_OK).then(
    () => undefined,
    (error: NodeJS.ErrnoException) => error.code ?? String(error),
  );
  if (denied !== undefined) return refused(`cannot write ${file} (${denied})`);
  const lock = await lockForEdit(file);
  if ('busy' in lock) return refused(lock.busy);
  try {
    const text = await readFile(file, 'utf8');
    const outcome = editRoutes(text, file, request, env);
    if (outcome.result !== 'changed') return outcome;
    // An editor (not another ficus edit: those wait for the lock) saved in the meantime:
    // writing would silently undo it.
    if ((await readFile(file, 'utf8')) !== text) return refused(`${file} changed while it was being edited; run the command again`);
    await writeFileAtomically(file, outcome.text, { mode: stats.mode & 0o7777, owner: stats });
    return outcome;
  } finally {
    await lock.release();
  }
}
