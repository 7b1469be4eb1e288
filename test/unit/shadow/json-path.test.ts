import { describe, expect, test } from 'vitest';
import { IGNORED, JsonIgnore, parseJsonPath, type PathState } from '../../../src/shadow/json-path.js';

describe('parseJsonPath', () => {
  test.each([
    ['a', [{ kind: 'key', key: 'a' }]],
    ['meta.generatedAt', [{ kind: 'key', key: 'meta' }, { kind: 'key', key: 'generatedAt' }]],
    ['$.meta.generatedAt', [{ kind: 'key', key: 'meta' }, { kind: 'key', key: 'generatedAt' }]],
    ['items.*.updatedAt', [{ kind: 'key', key: 'items' }, { kind: 'any' }, { kind: 'key', key: 'updatedAt' }]],
    ['items[0].id', [{ kind: 'key', key: 'items' }, { kind: 'index', index: 0 }, { kind: 'key', key: 'id' }]],
    ['items[*].id', [{ kind: 'key', key: 'items' }, { kind: 'anyIndex' }, { kind: 'key', key: 'id' }]],
    ['$[3]', [{ kind: 'index', index: 3 }]],
    ['grid[1][2]', [{ kind: 'key', key: 'grid' }, { kind: 'index', index: 1 }, { kind: 'index', index: 2 }]],
    ['$price', [{ kind: 'key', key: '$price' }]],
  ])('%s', (text, steps) => {
    expect(parseJsonPath(text)).toEqual(steps);
  });

  test.each(['', '$.', 'a..b', 'a.', '.a', 'a[x]', 'a[1', 'a[]', 'a[0]b', 'a b'])('%j is not a path', (text) => {
    expect(parseJsonPath(text)).toBeUndefined();
  });
});

describe('JsonIgnore', () => {
  /** Whether the node at `segments` is ignored. */
  function ignored(paths: string[], segments: (string | number)[]): boolean {
    const ignore = new JsonIgnore(paths);
    let state: PathState = ignore.start;
    for (const segment of segments) {
      const next = ignore.step(state, segment);
      if (next === IGNORED) return true;
      state = next;
    }
    return false;
  }

  test.each<[string[], (string | number)[], boolean]>([
    [['meta.generatedAt'], ['meta', 'generatedAt'], true],
    [['meta.generatedAt'], ['meta', 'generatedAt', 'x'], true],
    [['meta.generatedAt'], ['meta'], false],
    [['meta.generatedAt'], ['meta', 'other'], false],
    [['items.*.updatedAt'], ['items', 3, 'updatedAt'], true],
    [['items.*.updatedAt'], ['items', 'k', 'updatedAt'], true],
    [['items[*].updatedAt'], ['items', 'k', 'updatedAt'], false],
    [['items[*].updatedAt'], ['items', 0, 'updatedAt'], true],
    [['items[1]'], ['items', 1], true],
    [['items[1]'], ['items', 0], false],
    [['items.1'], ['items', 1], true],
    [['a.b', 'a.*.c'], ['a', 'x', 'c'], true],
    [['a.b', 'a.*.c'], ['a', 'b'], true],
    [['a.b', 'a.*.c'], ['a', 'x', 'd'], false],
    [[], ['a'], false],
  ])('%j at %j: %s', (paths, segments, expected) => {
    expect(ignored(paths, segments)).toBe(expected);
  });
});
