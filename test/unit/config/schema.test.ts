import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { describe, expect, test } from 'vitest';
import { substituteEnv } from '../../../src/config/env.js';
import { routesJsonSchema } from '../../../src/config/schema.js';

/**
 * `ficus schema` is for editors: it must accept what ficus accepts and flag a mistyped key.
 * A small validator for the JSON Schema keywords the output uses (it fails on any other, so a
 * new keyword cannot pass unchecked).
 */
type Schema = Record<string, unknown>;
const KNOWN = new Set(['$schema', 'type', 'properties', 'required', 'additionalProperties', 'propertyNames', 'items', 'minItems', 'anyOf', 'const', 'enum', 'pattern', 'minimum', 'maximum', 'exclusiveMinimum', 'default']);

function validate(schema: Schema, value: unknown, path = '$'): string[] {
  const unknown = Object.keys(schema).filter((key) => !KNOWN.has(key));
  if (unknown.length > 0) return [`${path}: validator does not know ${unknown.join(', ')}`];
  const errors: string[] = [];
  const fail = (message: string) => errors.push(`${path}: ${message}`);
  const types: Record<string, (v: unknown) => boolean> = {
    object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
    array: Array.isArray,
    string: (v) => typeof v === 'string',
    number: (v) => typeof v === 'number',
    integer: Number.isInteger,
    boolean: (v) => typeof v === 'boolean',
  };
  if (typeof schema.type === 'string' && !types[schema.type]?.(value)) return [`${path}: not ${schema.type}`];
  if ('const' in schema && value !== schema.const) fail(`not ${String(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) fail('not in enum');
  if (Array.isArray(schema.anyOf) && !schema.anyOf.some((branch) => validate(branch as Schema, value, path).length === 0)) fail('matches no branch');
  if (typeof value === 'string' && typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value)) fail(`does not match ${schema.pattern}`);
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) fail('too small');
    if (typeof schema.maximum === 'number' && value > schema.maximum) fail('too big');
    if (typeof schema.exclusiveMinimum === 'number' && value <= schema.exclusiveMinimum) fail('too small');
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) fail('too few items');
    if (schema.items) value.forEach((item, i) => errors.push(...validate(schema.items as Schema, item, `${path}.${i}`)));
  }
  if (types.object?.(value)) {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const key of (schema.required ?? []) as string[]) if (!(key in object)) fail(`missing ${key}`);
    for (const [key, inner] of Object.entries(object)) {
      if (schema.propertyNames) errors.push(...validate(schema.propertyNames as Schema, key, `${path}.${key}(name)`));
      if (properties[key]) errors.push(...validate(properties[key], inner, `${path}.${key}`));
      else if (schema.additionalProperties === false) fail(`unknown key ${key}`);
      else if (typeof schema.additionalProperties === 'object') errors.push(...validate(schema.additionalProperties as Schema, inner, `${path}.${key}`));
    }
  }
  return errors;
}

const schema = routesJsonSchema() as Schema;
const root = fileURLToPath(new URL('../../../', import.meta.url));
const valid = readdirSync(join(root, 'test/fixtures/valid')).filter((name) => name.endsWith('.yaml'));

function documentOf(file: string): Record<string, unknown> {
  const doc = parseDocument(readFileSync(join(root, file), 'utf8'));
  substituteEnv(doc, {});
  return doc.toJS() as Record<string, unknown>;
}

test('is a draft 2020-12 JSON Schema that survives a JSON round trip', () => {
  expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
});

test('every object with fixed keys refuses other keys', () => {
  const open: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (typeof node !== 'object' || node === null) return;
    const s = node as Schema;
    if (s.properties !== undefined && s.additionalProperties !== false) open.push(path);
    for (const [key, inner] of Object.entries(s)) walk(inner, `${path}/${key}`);
  };
  walk(schema, '#');
  expect(open).toEqual([]);
});

describe('accepts the valid fixtures and the repository routes.yaml', () => {
  test.each([...valid.map((name) => `test/fixtures/valid/${name}`), 'routes.yaml'])('%s', (file) => {
    expect(validate(schema, documentOf(file))).toEqual([]);
  });
});

describe('rejects a mistyped key wherever it is', () => {
  const base = () => documentOf('test/fixtures/valid/full.yaml') as { services: Record<string, Record<string, unknown>>; routes: Record<string, Record<string, unknown>>[] };
  test.each<[string, (doc: ReturnType<typeof base>) => void, string]>([
    ['at the top level', (doc) => Object.assign(doc, { rootes: [] }), '$: unknown key rootes'],
    ['in a service', (doc) => Object.assign(doc.services.legacy ?? {}, { ulr: 'x' }), '$.services.legacy: unknown key ulr'],
    ['in a route', (doc) => Object.assign(doc.routes[0] ?? {}, { too: 'legacy' }), '$.routes.0: unknown key too'],
    ['in a match', (doc) => Object.assign(doc.routes[1]?.match ?? {}, { methds: ['GET'] }), '$.routes.1.match: unknown key methds'],
  ])('%s', (_name, mutate, expected) => {
    const doc = base();
    mutate(doc);
    expect(validate(schema, doc)).toEqual([expected]);
  });

  test('and a wrong value type', () => {
    const doc = base();
    Object.assign(doc, { listen: { port: 'eighty' } });
    expect(validate(schema, doc)).toEqual(['$.listen.port: matches no branch']);
  });

  test('but an environment reference where a number or boolean goes (README: `port: ${env:PORT}` works)', () => {
    const doc = base();
    Object.assign(doc, { listen: { port: '${env:PORT}' }, accessLog: '${env:ACCESS_LOG:-true}' });
    expect(validate(schema, doc)).toEqual([]);
  });
});
