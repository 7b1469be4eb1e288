import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isMap, isNode, isPair, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { substituteEnv } from './env.js';
import type { ConfigIssue } from './issues.js';
import { RoutesFile } from './schema.js';
import { crossCheck } from './validate.js';

export type LoadResult =
  | { ok: true; file: string; hash: string; config: RoutesFile }
  | { ok: false; file: string; hash: string; issues: ConfigIssue[] };

export async function loadRoutesFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    return { ok: false, file, hash: '', issues: [{ file, line: 1, col: 1, path: '', message: `cannot read file (${reason})` }] };
  }
  return parseRoutes(text, file, env);
}

/** Parses, substitutes env, validates the schema and the cross references; reports every issue. */
export function parseRoutes(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number, path: string, message: string): ConfigIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col, path, message };
  };

  if (doc.errors.length > 0) {
    return { ok: false, file, hash, issues: doc.errors.map((e) => at(e.pos[0], '', yamlMessage(e.message))) };
  }

  const issues: ConfigIssue[] = [];
  for (const problem of substituteEnv(doc, env)) {
    issues.push(at(problem.node.range?.[0] ?? 0, pathOfNode(doc, problem.node), problem.message));
  }

  const parsed = RoutesFile.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    for (const issue of parsed.error.issues) issues.push(...locateZodIssue(doc, issue, at));
  } else {
    for (const problem of crossCheck(parsed.data)) {
      const node = nearestNode(doc, problem.path);
      issues.push(at(node.offset, problem.path.join('.'), problem.message));
    }
  }
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  if (issues.length > 0 || !parsed.success) return { ok: false, file, hash, issues };
  return { ok: true, file, hash, config: parsed.data };
}

type At = (offset: number, path: string, message: string) => ConfigIssue;

function locateZodIssue(doc: Document, issue: z.core.$ZodIssue, at: At): ConfigIssue[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const offset = keyOffset(doc, path, key) ?? nearestNode(doc, path).offset;
      return at(offset, [...path, key].join('.'), `unknown key "${key}"`);
    });
  }
  const node = nearestNode(doc, path);
  const message = node.exact ? issue.message : `${issue.message} (missing)`;
  return [at(node.offset, path.join('.'), humanise(message))];
}

function humanise(message: string): string {
  return message.replace(/^Invalid input: /, '').replace(/, received undefined \(missing\)$/, ', but it is missing');
}

/** The node at `path`, or its deepest existing ancestor when the key is missing. */
function nearestNode(doc: Document, path: readonly (string | number)[]): { offset: number; exact: boolean } {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return { offset: node.range[0], exact: depth === path.length };
  }
  return { offset: 0, exact: false };
}

function keyOffset(doc: Document, path: readonly (string | number)[], key: string): number | undefined {
  const parent = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (!isMap(parent)) return undefined;
  for (const pair of parent.items) {
    if (isPair(pair) && isScalar(pair.key) && pair.key.value === key) return pair.key.range?.[0];
  }
  return undefined;
}

function pathOfNode(doc: Document, target: unknown): string {
  const found: (string | number)[] = [];
  const walk = (node: unknown, path: (string | number)[]): boolean => {
    if (node === target) {
      found.push(...path);
      return true;
    }
    if (isMap(node)) {
      return node.items.some((pair) => isScalar(pair.key) && walk(pair.value, [...path, String(pair.key.value)]));
    }
    if (isNode(node) && 'items' in node && Array.isArray(node.items)) {
      return (node.items as Node[]).some((item, i) => walk(item, [...path, i]));
    }
    return false;
  };
  walk(doc.contents, []);
  return found.join('.');
}

function yamlMessage(message: string): string {
  return `YAML syntax error: ${message.split('\n')[0]?.replace(/ at line \d+, column \d+.*$/, '')}`;
}
