import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { ConfigStore } from '../../../src/config/store.js';
import type { Clock } from '../../../src/observe/clock.js';
import type { Endpoint } from '../../../src/upstream/endpoint.js';
import type { ServiceRuntime } from '../../../src/upstream/service.js';
import { routesYaml, tempDir } from '../../helpers/proxy.js';

/**
 * The runtime side of a blue/green service across reloads, through the config store: each
 * colour keeps its endpoints (health, pools) while its own definition is unchanged, whatever
 * `active` says; the colour that goes inactive gives up its pools.
 */
const BLUE = 'http://127.0.0.1:3201';
const GREEN = 'http://127.0.0.1:3202';
const SHARED = 'http://127.0.0.1:3001';

interface Edit {
  active?: string;
  blue?: string;
  green?: string;
  service?: string;
}

function config(edit: Edit = {}): string {
  return routesYaml(`services:
  legacy: { url: ${SHARED} }
  orders:
    blue: ${edit.blue ?? `{ urls: [${BLUE}, ${SHARED}] }`}
    green: ${edit.green ?? `{ url: ${GREEN} }`}
    active: ${edit.active ?? 'blue'}
    outlier: { consecutiveFailures: 1 }
${edit.service ?? ''}routes:
  - { name: rest, match: { path: / }, to: orders }
`);
}

async function openStore(text: string) {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, text);
  const clock: Clock = { now: () => 1_000_000 };
  const store = await ConfigStore.open(file, { clock, random: () => 0, serviceEvents: () => ({ ejected() {}, returned() {}, panic() {} }) });
  onTestFinished(() => store.close());
  const orders = () => store.current.services.get('orders') as ServiceRuntime;
  const colour = (name: 'blue' | 'green') => orders().colours?.[name] as ServiceRuntime;
  const reload = async (edit: Edit) => {
    await writeFile(file, config(edit));
    expect((await store.reload('admin')).result).toBe('success');
  };
  return { store, orders, colour, reload };
}

test('a blue/green service has a runtime per colour, and none of its own endpoints', async () => {
  const { orders, colour } = await openStore(config());
  expect(orders().endpoints).toEqual([]);
  expect(colour('blue').endpoints.map((e) => e.origin)).toEqual([BLUE, SHARED]);
  expect(colour('green').endpoints.map((e) => e.origin)).toEqual([GREEN]);
  expect(colour('blue').def.name).toBe('orders');
});

test.each<{ name: string; edit: Edit; blue: boolean; green: boolean }>([
  { name: 'a cutover', edit: { active: 'green' }, blue: true, green: true },
  { name: 'a new preview door', edit: { service: '    preview: { header: x-pv, token: t }\n' }, blue: true, green: true },
  { name: 'a new green release', edit: { green: '{ url: http://127.0.0.1:3299 }' }, blue: true, green: false },
  { name: 'a new green release with a cutover to it', edit: { green: '{ url: http://127.0.0.1:3299 }', active: 'green' }, blue: true, green: false },
  { name: 'a new blue release', edit: { blue: `{ url: ${BLUE} }` }, blue: false, green: true },
  { name: 'new timeouts for the whole service', edit: { service: '    timeouts: { response: 3s }\n' }, blue: false, green: false },
])('$name: blue kept $blue, green kept $green, and a kept colour keeps its ejections', async ({ edit, blue, green }) => {
  const { colour, reload } = await openStore(config());
  const before = { blue: colour('blue'), green: colour('green') };
  before.blue.outlier.failure(before.blue.endpoints[0] as Endpoint);
  expect(before.blue.endpoints[0]?.ejectedUntil).toBeGreaterThan(0);
  await reload(edit);
  expect(colour('blue') === before.blue).toBe(blue);
  expect(colour('green') === before.green).toBe(green);
  expect((colour('blue').endpoints[0]?.ejectedUntil ?? 0) > 0).toBe(blue);
});

test('a cutover retires the pools of the colour that went inactive, and gives it fresh ones', async () => {
  const { store, colour, reload } = await openStore(config());
  const legacyPool = store.current.services.get('legacy')?.endpoints[0]?.pool;
  const bluePools = colour('blue').endpoints.map((e) => e.pool);
  const greenPools = colour('green').endpoints.map((e) => e.pool);

  await reload({ active: 'green' });
  const renewed = colour('blue').endpoints.map((e) => e.pool);
  for (const [i, pool] of bluePools.entries()) {
    expect(pool.closed).toBe(true);
    expect(renewed[i]).not.toBe(pool);
    expect(renewed[i]?.closed).toBe(false);
  }
  expect(colour('green').endpoints.map((e) => e.pool)).toEqual(greenPools);
  expect(greenPools.every((pool) => !pool.closed)).toBe(true);
  // blue shares an origin with `legacy`: the colour's pools are its own, legacy's stays open.
  expect(store.current.services.get('legacy')?.endpoints[0]?.pool).toBe(legacyPool);
  expect(legacyPool?.closed).toBe(false);

  await reload({ active: 'blue' });
  expect(greenPools.every((pool) => pool.closed)).toBe(true);
  expect(colour('blue').endpoints.map((e) => e.pool)).toEqual(renewed);
  expect(renewed.every((pool) => !pool.closed)).toBe(true);
});

test('a reload that leaves `active` alone keeps every pool warm', async () => {
  const { colour, reload } = await openStore(config());
  const pools = [...colour('blue').endpoints, ...colour('green').endpoints].map((e) => e.pool);
  await reload({ service: '    preview: { header: x-pv, token: t }\n' });
  expect([...colour('blue').endpoints, ...colour('green').endpoints].map((e) => e.pool)).toEqual(pools);
  expect(pools.every((pool) => !pool.closed)).toBe(true);
});

test('a new release of the colour that goes inactive at the same time opens no stale pool', async () => {
  const { colour, reload } = await openStore(config());
  const old = colour('blue').endpoints.map((e) => e.pool);
  await reload({ active: 'green', blue: `{ url: ${BLUE} }` });
  expect(old.every((pool) => pool.closed)).toBe(true);
  expect(colour('blue').endpoints[0]?.pool.closed).toBe(false);
  expect(old).not.toContain(colour('blue').endpoints[0]?.pool);
});
