import { isAlias, isNode, isScalar, type Document, type Pair, type YAMLMap } from 'yaml';

// One value of a YAML text replaced in its node's source range, or one `key: value` added to
// its map, so that every other byte stays as the operator wrote it (config/edit.ts says why
// the Document is not re-serialised).

export type Path = (string | number)[];
export type Value = string | number | boolean;

/** An edit that cannot be made safely; its message tells the operator what to do instead. */
export class Refusal extends Error {}

export interface Splice {
  text: string;
  /** Offset of the value in the new text. */
  at: number;
  from: Value | null;
  fromText: string | undefined;
  toText: string;
}

/** Puts `value` in place of the value at `path`, or adds it to its map when the key is not written. */
export function spliceValue(text: string, doc: Document, path: Path, value: Value): Splice {
  const parent = doc.getIn(path.slice(0, -1), true) as YAMLMap;
  const key = String(path.at(-1));
  const where = path.join('.');
  const pair = parent.items.find((item): item is Pair => isScalar(item.key) && String(item.key.value) === key);
  if (!pair) return insertPair(text, parent, key, value);

  const node = pair.value;
  if (isAlias(node) || (isScalar(node) && (node.anchor !== undefined || node.tag !== undefined))) {
    throw new Refusal(`${where} uses a YAML anchor, alias or tag; edit it by hand`);
  }
  if (!isScalar(node) || !node.range || node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED') {
    throw new Refusal(`${where} is not a single value; edit it by hand`);
  }
  // `key:` with nothing after it: YAML's null, with no text to replace in place.
  if (node.range[0] === node.range[1]) throw new Refusal(`${where} is written with no value; give it one by hand`);
  const fromText = text.slice(node.range[0], node.range[1]);
  // The proxy reads the variable, so the value lives in its environment, not in this file.
  if (typeof node.value === 'string' && node.value.includes('${env:')) {
    throw new Refusal(`${where} is set from the environment (${fromText}); change the variable, or edit the file by hand`);
  }
  const from = typeof node.value === 'string' || typeof node.value === 'number' || typeof node.value === 'boolean' ? node.value : null;
  const toText = render(value, node.type);
  const after = keepCommentColumn(text, node.range[1], toText.length - fromText.length);
  return { text: text.slice(0, node.range[0]) + toText + after, at: node.range[0], from, fromText, toText };
}

/**
 * The text from `end` on, with an end-of-line comment kept in its column: the spaces before it
 * take up the value's change of length (down to one). Only when nothing but closing brackets
 * and commas stands between the value and the comment, so no `#` inside a string is mistaken
 * for one.
 */
function keepCommentColumn(text: string, end: number, delta: number): string {
  const rest = text.slice(end);
  const padded = /^([,\]} ]*?)( +)#/.exec(rest.slice(0, rest.search(/\r?\n|$/)));
  if (delta === 0 || padded === null) return rest;
  const [, closing = '', spaces = ''] = padded;
  return closing + ' '.repeat(Math.max(1, spaces.length - delta)) + rest.slice(closing.length + spaces.length);
}

/** Adds `key: value` as the map's last entry, in the map's own style and indentation. */
function insertPair(text: string, map: YAMLMap, key: string, value: Value): Splice {
  const toText = render(value, 'PLAIN');
  const range = map.range;
  if (!range) throw new Refusal(`cannot find where to add ${key}; edit it by hand`);
  const last = map.items.at(-1);
  if (map.flow) {
    const lastNode: unknown = last ? (last.value ?? last.key) : undefined;
    const lastEnd = isNode(lastNode) ? lastNode.range : undefined;
    if (last && !lastEnd) throw new Refusal(`cannot find where to add ${key}; edit it by hand`);
    const at = lastEnd ? lastEnd[1] : range[0] + 1;
    const inserted = lastEnd ? `, ${key}: ${toText}` : ` ${key}: ${toText} `;
    const valueAt = at + inserted.length - toText.length - (lastEnd ? 0 : 1);
    return { text: text.slice(0, at) + inserted + keepCommentColumn(text, at, inserted.length), at: valueAt, from: null, fromText: undefined, toText };
  }
  const firstKey = map.items[0]?.key;
  const keyStart = isScalar(firstKey) ? firstKey.range?.[0] : undefined;
  if (keyStart === undefined) throw new Refusal(`cannot find where to add ${key}; edit it by hand`);
  const indent = ' '.repeat(keyStart - (text.lastIndexOf('\n', keyStart - 1) + 1));
  // After the map's last line (its trailing comment included), before whatever follows.
  let end = range[1];
  while (end > range[0] && /\s/.test(text[end - 1] ?? '')) end--;
  const newline = text.indexOf('\n', end);
  // A file written on Windows keeps its line ends.
  const crlf = newline > 0 && text[newline - 1] === '\r';
  const at = newline === -1 ? text.length : crlf ? newline - 1 : newline;
  const inserted = `${crlf || (newline === -1 && text.includes('\r\n')) ? '\r\n' : '\n'}${indent}${key}: ${toText}`;
  return { text: text.slice(0, at) + inserted + text.slice(at), at: at + inserted.length - toText.length, from: null, fromText: undefined, toText };
}

/** A new value written the way the old one was: quoted strings stay quoted. */
function render(value: Value, style: string | undefined): string {
  if (typeof value !== 'string') return String(value);
  if (style === 'QUOTE_DOUBLE') return JSON.stringify(value);
  if (style === 'QUOTE_SINGLE') return `'${value.replaceAll("'", "''")}'`;
  return value;
}

/** 1-based line of `offset` in `text`. */
export function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}
