import { secretDigest } from '../../../src/config/secret.js';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, test } from 'vitest';
import type { Colour, ColoursDef, ServiceDef } from '../../../src/config/snapshot.js';
import { chooseColour, otherColour } from '../../../src/upstream/bluegreen.js';

function group(colour: Colour): ServiceDef {
  return {
    name: 'orders',
    colour,
    endpoints: [{ origin: `http://${colour}.internal:80`, basePath: '' }],
    timeouts: { connectMs: 1_000, responseMs: 1_000, idleMs: 1_000 },
    balance: 'round-robin',
    consecutiveFailures: 5,
    legacy: false,
    fingerprint: colour,
  };
}

function colours(active: Colour, token: string | undefined): ColoursDef {
  return { active, blue: group('blue'), green: group('green'), guard: undefined, preview: token === undefined ? undefined : { header: 'x-preview', token, tokenDigest: secretDigest(token) } };
}

const TOKEN = 's3cret-t0ken';

describe('the colour that serves a request', () => {
  test.each<{ name: string; active: Colour; token: string | undefined; headers: IncomingHttpHeaders; colour: Colour; preview: boolean }>([
    { name: 'active blue, no preview configured', active: 'blue', token: undefined, headers: { 'x-preview': TOKEN }, colour: 'blue', preview: false },
    { name: 'active green, no preview configured', active: 'green', token: undefined, headers: {}, colour: 'green', preview: false },
    { name: 'no preview header', active: 'blue', token: TOKEN, headers: {}, colour: 'blue', preview: false },
    { name: 'the right token opens the inactive green', active: 'blue', token: TOKEN, headers: { 'x-preview': TOKEN }, colour: 'green', preview: true },
    { name: 'the right token opens the inactive blue', active: 'green', token: TOKEN, headers: { 'x-preview': TOKEN }, colour: 'blue', preview: true },
    { name: 'a wrong token is ignored', active: 'blue', token: TOKEN, headers: { 'x-preview': 'guess' }, colour: 'blue', preview: false },
    { name: 'a prefix of the token is wrong', active: 'blue', token: TOKEN, headers: { 'x-preview': TOKEN.slice(0, -1) }, colour: 'blue', preview: false },
    { name: 'the token and more is wrong', active: 'blue', token: TOKEN, headers: { 'x-preview': `${TOKEN}x` }, colour: 'blue', preview: false },
    { name: 'the token in another case is wrong', active: 'blue', token: TOKEN, headers: { 'x-preview': TOKEN.toUpperCase() }, colour: 'blue', preview: false },
    { name: 'the token sent twice (joined by Node) is wrong', active: 'blue', token: TOKEN, headers: { 'x-preview': `${TOKEN}, ${TOKEN}` }, colour: 'blue', preview: false },
    { name: 'the token under another header is ignored', active: 'blue', token: TOKEN, headers: { 'x-other': TOKEN }, colour: 'blue', preview: false },
    { name: 'an empty header value is ignored', active: 'green', token: TOKEN, headers: { 'x-preview': '' }, colour: 'green', preview: false },
    { name: 'an empty token disables preview, even for an empty header', active: 'blue', token: '', headers: { 'x-preview': '' }, colour: 'blue', preview: false },
    { name: 'an empty token disables preview', active: 'green', token: '', headers: { 'x-preview': 'anything' }, colour: 'green', preview: false },
  ])('$name', ({ active, token, headers, colour, preview }) => {
    expect(chooseColour(colours(active, token), headers)).toEqual({ colour, preview });
  });

  test('a non-ASCII token is compared byte for byte', () => {
    const def = colours('blue', 'jéton-ключ');
    expect(chooseColour(def, { 'x-preview': 'jéton-ключ' })).toEqual({ colour: 'green', preview: true });
    expect(chooseColour(def, { 'x-preview': 'jeton-ключ' })).toEqual({ colour: 'blue', preview: false });
  });

  test('the answer depends on the definition it is given, not on an earlier one', () => {
    const before = colours('blue', TOKEN);
    const after = colours('blue', 'rotated');
    expect(chooseColour(before, { 'x-preview': TOKEN }).colour).toBe('green');
    expect(chooseColour(after, { 'x-preview': TOKEN }).colour).toBe('blue');
    expect(chooseColour(after, { 'x-preview': 'rotated' }).colour).toBe('green');
  });

  test('choosing allocates no answer per request: the same choice is the same object', () => {
    const def = colours('blue', TOKEN);
    expect(chooseColour(def, {})).toBe(chooseColour(colours('blue', undefined), {}));
    expect(chooseColour(def, { 'x-preview': TOKEN })).toBe(chooseColour(def, { 'x-preview': TOKEN }));
  });
});

test.each<[Colour, Colour]>([
  ['blue', 'green'],
  ['green', 'blue'],
])('the other colour of %s is %s', (colour, other) => {
  expect(otherColour(colour)).toBe(other);
});
