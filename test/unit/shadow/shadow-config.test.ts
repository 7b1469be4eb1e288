import { describe, expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { formatIssue } from '../../../src/config/issues.js';
import { parseRoutes } from '../../../src/config/load.js';

/**
 * What `ficus check` says of a `shadow:` block (every error at its line and column), and the
 * defaults a valid one is compiled with. Line 1 is `version: 1`, the route is on line 5.
 */
const SERVICES = 'services:\n  legacy: { url: http://127.0.0.1:3001 }\n  fresh: { url: http://127.0.0.1:3002 }\n';

function errors(route: string): string[] {
  const loaded = parseRoutes(`version: 1\n${SERVICES}routes:\n  - ${route}\n`, 'r.yaml', {});
  return loaded.ok ? [] : loaded.issues.map(formatIssue);
}

describe('check', () => {
  test.each([
    ['an unknown shadow service', '{ name: a, match: {}, to: legacy, shadow: { to: nowhere } }', ['r.yaml:6:53 routes.0.shadow.to: unknown service "nowhere"']],
    ['the shadow is the route\'s own service', '{ name: a, match: {}, to: legacy, shadow: { to: legacy } }', ['r.yaml:6:53 routes.0.shadow.to: the shadow is the same service as the route\'s "to"']],
    ['a JSON path that is not one', '{ name: a, match: {}, to: legacy, shadow: { to: fresh, ignoreJsonPaths: [ok.path, "items..id"] } }',
      ['r.yaml:6:87 routes.0.shadow.ignoreJsonPaths.1: expected a JSON path such as meta.generatedAt, items.*.updatedAt or items[0].id']],
    ['a shadow on a respond route', '{ name: a, match: {}, respond: { status: 204 }, shadow: { to: fresh } }', ['r.yaml:6:53 routes.0.shadow: a "respond" route has no traffic to copy']],
    ['a zero timeout', '{ name: a, match: {}, to: legacy, shadow: { to: fresh, timeout: 0s } }', ['r.yaml:6:69 routes.0.shadow.timeout: must be longer than 0']],
  ])('%s', (_name, route, expected) => {
    expect(errors(route)).toEqual(expected);
  });

  test.each([
    ['percent over 100', 'percent: 101'],
    ['a lower-case method', 'methods: [get]'],
    ['no methods', 'methods: []'],
    ['a header name with a space', 'ignoreHeaders: ["x a"]'],
    ['maxConcurrent 0', 'maxConcurrent: 0'],
    ['maxBodyBytes 0', 'maxBodyBytes: 0'],
    ['an unknown key', 'mirror: true'],
  ])('%s is an error', (_name, field) => {
    const found = errors(`{ name: a, match: {}, to: legacy, shadow: { to: fresh, ${field} } }`);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^r\.yaml:6:\d+ routes\.0\.shadow/);
  });
});

describe('compile', () => {
  function shadowOf(block: string) {
    const loaded = parseRoutes(`version: 1\n${SERVICES}routes:\n  - { name: a, match: {}, to: legacy, shadow: ${block} }\n`, 'r.yaml', {});
    if (!loaded.ok) throw new Error(loaded.issues.map(formatIssue).join('\n'));
    const action = compile(loaded.config, 'r.yaml', loaded.hash, new Date(0)).routes[0]?.action;
    return action?.kind === 'proxy' ? action.shadow : undefined;
  }

  test('defaults: every GET and HEAD, 1 MiB, 5 s, 32 in flight, no comparison', () => {
    expect(shadowOf('{ to: fresh }')).toEqual({
      service: 'fresh',
      percent: 100,
      compare: false,
      methods: new Set(['GET', 'HEAD']),
      ignoreHeaders: new Set(),
      ignoreJsonPaths: [],
      maxBodyBytes: 1_048_576,
      timeoutMs: 5_000,
      maxConcurrent: 32,
    });
  });

  test('as written, header names lower-cased', () => {
    expect(shadowOf('{ to: fresh, percent: 12.5, compare: true, methods: [POST], ignoreHeaders: [X-Build], ignoreJsonPaths: [$.meta.at], maxBodyBytes: 10, timeout: 250ms, maxConcurrent: 2 }')).toEqual({
      service: 'fresh',
      percent: 12.5,
      compare: true,
      methods: new Set(['POST']),
      ignoreHeaders: new Set(['x-build']),
      ignoreJsonPaths: ['$.meta.at'],
      maxBodyBytes: 10,
      timeoutMs: 250,
      maxConcurrent: 2,
    });
  });
});
