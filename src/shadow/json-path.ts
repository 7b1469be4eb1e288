/**
 * `ignoreJsonPaths` compiled once per shadow definition: each path is a list of steps, and a
 * walk over a JSON document carries the set of (path, step) pairs still alive, so deciding
 * whether a node is ignored costs a few comparisons and no string building.
 */
export type PathStep =
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'index'; readonly index: number }
  /** `*`: any key of an object, any element of an array. */
  | { readonly kind: 'any' }
  /** `[*]`: any element of an array. */
  | { readonly kind: 'anyIndex' };

export type JsonPattern = readonly PathStep[];

/**
 * Parses the syntax schema.ts accepts: keys separated by dots, `*`, `[n]`, `[*]`, and an
 * optional `$.` (or `$` before a bracket) for the root. Undefined for anything else.
 */
export function parseJsonPath(text: string): JsonPattern | undefined {
  let rest = text.startsWith('$.') ? text.slice(2) : text.startsWith('$[') ? text.slice(1) : text;
  if (rest === '') return undefined;
  const steps: PathStep[] = [];
  let first = true;
  while (rest !== '') {
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      if (close === -1) return undefined;
      const inside = rest.slice(1, close);
      if (inside === '*') steps.push({ kind: 'anyIndex' });
      else if (/^\d+$/.test(inside)) steps.push({ kind: 'index', index: Number(inside) });
      else return undefined;
      rest = rest.slice(close + 1);
    } else {
      if (!first) {
        if (!rest.startsWith('.')) return undefined;
        rest = rest.slice(1);
      }
      const end = rest.search(/[.[]/);
      const key = end === -1 ? rest : rest.slice(0, end);
      if (key === '' || /[\]\s]/.test(key)) return undefined;
      steps.push(key === '*' ? { kind: 'any' } : { kind: 'key', key });
      rest = end === -1 ? '' : rest.slice(end);
    }
    first = false;
  }
  return steps;
}

/** Alive (pattern, step) pairs, flattened; `IGNORED` once a whole pattern has matched. */
export type PathState = readonly number[];
export const IGNORED: unique symbol = Symbol('ignored');
const NONE: PathState = [];

export class JsonIgnore {
  readonly #patterns: readonly JsonPattern[];
  readonly start: PathState;

  constructor(paths: readonly string[]) {
    this.#patterns = paths.map(parseJsonPath).filter((p): p is JsonPattern => p !== undefined);
    this.start = this.#patterns.length === 0 ? NONE : this.#patterns.flatMap((_, i) => [i, 0]);
  }

  /** The state below `segment` (an object key or an array index), or IGNORED. */
  step(state: PathState, segment: string | number): PathState | typeof IGNORED {
    if (state.length === 0) return NONE;
    const next: number[] = [];
    for (let i = 0; i < state.length; i += 2) {
      const pattern = this.#patterns[state[i] as number] as JsonPattern;
      const at = state[i + 1] as number;
      if (!matches(pattern[at] as PathStep, segment)) continue;
      if (at + 1 === pattern.length) return IGNORED;
      next.push(state[i] as number, at + 1);
    }
    return next.length === 0 ? NONE : next;
  }
}

function matches(step: PathStep, segment: string | number): boolean {
  switch (step.kind) {
    case 'any':
      return true;
    case 'anyIndex':
      return typeof segment === 'number';
    case 'index':
      return segment === step.index;
    case 'key':
      // `items.0.id` reads naturally too: a numeric key names the array element.
      return typeof segment === 'string' ? segment === step.key : String(segment) === step.key;
  }
}
