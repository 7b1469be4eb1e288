import { secretDigest } from '../../../src/config/secret.js';
import { describe, expect, test } from 'vitest';
import { compile } from '../../../src/config/compile.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { ServiceDef, Snapshot } from '../../../src/config/snapshot.js';

function snapshotOf(yaml: string): Snapshot {
  const loaded = parseRoutes(`version: 1\n${yaml}`, 'routes.yaml', {});
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`).join('\n'));
  return compile(loaded.config, 'routes.yaml', loaded.hash, new Date(0));
}

interface Orders {
  blue?: string;
  green?: string;
  active?: string;
  preview?: string;
  extra?: string;
}

function ordersYaml(o: Orders = {}): string {
  return `services:
  legacy: { url: http://127.0.0.1:3001 }
  orders:
    blue: ${o.blue ?? '{ url: http://127.0.0.1:3201 }'}
    green: ${o.green ?? '{ urls: [http://127.0.0.1:3202, "http://127.0.0.1:3203/v2/"] }'}
    active: ${o.active ?? 'blue'}
${o.preview === undefined ? '' : `    preview: ${o.preview}\n`}${o.extra ?? ''}routes:
  - { name: rest, match: { path: / }, to: orders }
`;
}

const orders = (o: Orders = {}): ServiceDef => snapshotOf(ordersYaml(o)).services.get('orders') as ServiceDef;

describe('a blue/green service compiles into two endpoint groups and the active colour', () => {
  test('each colour takes `url` or `urls`; the service itself has no endpoints', () => {
    const def = orders();
    expect(def.endpoints).toEqual([]);
    expect(def.colours?.active).toBe('blue');
    expect(def.colours?.blue).toMatchObject({ name: 'orders', colour: 'blue', endpoints: [{ origin: 'http://127.0.0.1:3201', basePath: '' }] });
    expect(def.colours?.green).toMatchObject({
      name: 'orders',
      colour: 'green',
      endpoints: [
        { origin: 'http://127.0.0.1:3202', basePath: '' },
        { origin: 'http://127.0.0.1:3203', basePath: '/v2' },
      ],
    });
    expect(def.colours?.preview).toBeUndefined();
  });

  test.each(['blue', 'green'])('`active: %s` is kept as written (the audit compares it across reloads)', (active) => {
    expect(orders({ active }).colours?.active).toBe(active);
  });

  test('timeouts, balance, outlier threshold and legacy apply to both colours', () => {
    const def = orders({ extra: '    timeouts: { connect: 250ms, response: 2s }\n    balance: least-request\n    outlier: { consecutiveFailures: 2 }\n    legacy: true\n' });
    for (const colour of [def.colours?.blue, def.colours?.green]) {
      expect(colour).toMatchObject({ timeouts: { connectMs: 250, responseMs: 2_000, idleMs: 60_000 }, balance: 'least-request', consecutiveFailures: 2, legacy: true });
    }
    expect(def.legacy).toBe(true);
  });

  test('the preview header is matched in lower case; the token is kept exactly', () => {
    const def = orders({ preview: '{ header: X-Ficus-Preview, token: "Tok en" }' });
    expect(def.colours?.preview).toEqual({ header: 'x-ficus-preview', token: 'Tok en', tokenDigest: secretDigest('Tok en') });
  });

  test('an empty token is kept (it disables the door, and the header is still never forwarded)', () => {
    const snapshot = snapshotOf(ordersYaml({ preview: '{ header: x-pv, token: "" }' }));
    expect(snapshot.services.get('orders')?.colours?.preview).toEqual({ header: 'x-pv', token: '', tokenDigest: secretDigest('') });
    expect(snapshot.previewHeaders).toEqual(['x-pv']);
  });

  test('every preview header of the file is listed once, for the forwarder to drop', () => {
    const snapshot = snapshotOf(
      `${ordersYaml({ preview: '{ header: X-PV, token: a }' })}`.replace(
        'routes:',
        `  payments:\n    blue: { url: http://127.0.0.1:3301 }\n    green: { url: http://127.0.0.1:3302 }\n    active: green\n    preview: { header: x-pv, token: b }\n  carts:\n    blue: { url: http://127.0.0.1:3401 }\n    green: { url: http://127.0.0.1:3402 }\n    active: green\n    preview: { header: x-cart-preview, token: c }\nroutes:`,
      ),
    );
    expect(snapshot.previewHeaders).toEqual(['x-pv', 'x-cart-preview']);
  });

  test('a file without preview has no preview headers (the forwarder does no extra work)', () => {
    expect(snapshotOf(ordersYaml()).previewHeaders).toBeUndefined();
  });

  test('plain services are unchanged: no colours, their own endpoints', () => {
    const legacy = snapshotOf(ordersYaml()).services.get('legacy');
    expect(legacy?.colours).toBeUndefined();
    expect(legacy?.colour).toBeUndefined();
    expect(legacy?.endpoints).toEqual([{ origin: 'http://127.0.0.1:3001', basePath: '' }]);
  });

  test('the compiled colours are frozen with the snapshot', () => {
    const def = orders({ preview: '{ header: x-pv, token: t }' });
    expect(Object.isFrozen(def.colours)).toBe(true);
    expect(Object.isFrozen(def.colours?.blue.endpoints)).toBe(true);
    expect(Object.isFrozen(def.colours?.preview)).toBe(true);
  });
});

describe('fingerprints: what a reload may carry over', () => {
  const base = orders({ preview: '{ header: x-pv, token: one }' });
  test.each<{ name: string; edit: Orders; blue: boolean; green: boolean; service: boolean }>([
    { name: 'a cutover', edit: { active: 'green', preview: '{ header: x-pv, token: one }' }, blue: true, green: true, service: false },
    { name: 'a new preview token', edit: { preview: '{ header: x-pv, token: two }' }, blue: true, green: true, service: false },
    { name: 'no preview at all', edit: {}, blue: true, green: true, service: false },
    { name: 'a new green release', edit: { green: '{ url: http://127.0.0.1:3299 }', preview: '{ header: x-pv, token: one }' }, blue: true, green: false, service: false },
    { name: 'a new blue release', edit: { blue: '{ urls: [http://127.0.0.1:3201, http://127.0.0.1:3204] }', preview: '{ header: x-pv, token: one }' }, blue: false, green: true, service: false },
    { name: 'new timeouts for the service', edit: { preview: '{ header: x-pv, token: one }', extra: '    timeouts: { response: 1s }\n' }, blue: false, green: false, service: false },
    { name: 'the same text', edit: { preview: '{ header: x-pv, token: one }' }, blue: true, green: true, service: true },
  ])('$name: blue kept $blue, green kept $green, service unchanged $service', ({ edit, blue, green, service }) => {
    const next = orders(edit);
    expect(next.colours?.blue.fingerprint === base.colours?.blue.fingerprint).toBe(blue);
    expect(next.colours?.green.fingerprint === base.colours?.green.fingerprint).toBe(green);
    expect(next.fingerprint === base.fingerprint).toBe(service);
  });

  test('the service fingerprint never holds the preview token', () => {
    expect(base.fingerprint).not.toContain('one');
    expect(orders({ preview: '{ header: x-pv, token: hunter2 }' }).fingerprint).not.toContain('hunter2');
  });

  test('a colour and a plain service with the same URL have the same fingerprint, yet are separate runtimes (their own pools)', () => {
    const snapshot = snapshotOf(ordersYaml({ blue: '{ url: http://127.0.0.1:3001 }' }));
    expect(snapshot.services.get('orders')?.colours?.blue.fingerprint).toBe(snapshot.services.get('legacy')?.fingerprint);
    expect(snapshot.services.get('orders')?.colours?.blue.colour).toBe('blue');
  });
});
