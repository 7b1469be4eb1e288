import { request } from 'undici';
import { expect, test } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import type { ServiceRuntime } from '../../src/upstream/service.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { refusedPort, startUpstream } from '../helpers/upstream.js';

/**
 * Runtime state across reloads (SPEC §1.6): an outlier ejection survives a reload for every
 * endpoint group whose definition did not change (a plain service, or one colour of a blue/green
 * service, whatever `active` says) and is reset for those that did.
 */
type Group = 'blue' | 'green' | 'plain';

interface Edit {
  active?: 'blue' | 'green';
  token?: string;
  blueBase?: string;
  greenBase?: string;
  orders?: string;
  plain?: string;
  routes?: string;
}

interface Urls {
  blue: string;
  green: string;
  plain: string;
  refused: Record<Group, string>;
}

function config(urls: Urls, edit: Edit = {}): string {
  return routesYaml(`services:
  orders:
    blue: { urls: [${urls.blue}${edit.blueBase ?? ''}, ${urls.refused.blue}] }
    green: { urls: [${urls.green}${edit.greenBase ?? ''}, ${urls.refused.green}] }
    active: ${edit.active ?? 'blue'}
    preview: { header: x-preview, token: ${edit.token ?? 'one'} }
    outlier: { consecutiveFailures: 1 }
${edit.orders ?? ''}  plain: { urls: [${urls.plain}, ${urls.refused.plain}], outlier: { consecutiveFailures: 1 }${edit.plain ?? ''} }
routes:
${edit.routes ?? ''}  - { name: plain, match: { path: /plain }, to: plain }
  - { name: orders, match: { path: / }, to: orders }
`);
}

async function connectErrors(app: RunningApp, service: string): Promise<number> {
  const text = await (await request(`${app.adminUrl}/metrics`)).body.text();
  return Number(new RegExp(`ficus_upstream_errors_total\\{service="${service}",kind="connect"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

/** The refused endpoint of a group, from the running generation. */
function refusedEndpoint(app: RunningApp, group: Group, urls: Urls) {
  const services = app.store.current.services;
  const runtime = group === 'plain' ? services.get('plain') : services.get('orders')?.colours?.[group];
  return (runtime as ServiceRuntime).endpoints.find((e) => e.origin === urls.refused[group]);
}

/**
 * Two requests to a group: round-robin sends one to its refused endpoint unless that endpoint is
 * ejected (the request is then retried on the good one). Returns the connect errors they caused.
 */
async function probe(app: RunningApp, group: Group, edit: Edit): Promise<number> {
  const service = group === 'plain' ? 'plain' : 'orders';
  const before = await connectErrors(app, service);
  const preview = group !== 'plain' && group !== (edit.active ?? 'blue');
  for (let i = 0; i < 2; i++) {
    const res = await request(`${app.proxyUrl}${group === 'plain' ? '/plain' : '/orders'}/${i}`, { headers: preview ? { 'x-preview': edit.token ?? 'one' } : {} });
    const body = (await res.body.json()) as { name: string };
    expect(res.statusCode).toBe(200);
    expect(body.name).toBe(group);
  }
  return (await connectErrors(app, service)) - before;
}

const CASES: { name: string; edit: Edit; kept: Record<Group, boolean> }[] = [
  { name: 'a route added', edit: { routes: '  - { name: extra, match: { path: /extra }, to: plain }\n' }, kept: { blue: true, green: true, plain: true } },
  { name: 'a cutover to green', edit: { active: 'green' }, kept: { blue: true, green: true, plain: true } },
  { name: 'a rotated preview token', edit: { token: 'two' }, kept: { blue: true, green: true, plain: true } },
  { name: 'a new green release', edit: { greenBase: '/v2' }, kept: { blue: true, green: false, plain: true } },
  { name: 'a new blue release and a cutover away from it', edit: { blueBase: '/v2', active: 'green' }, kept: { blue: false, green: true, plain: true } },
  { name: "new timeouts for the blue/green service", edit: { orders: '    timeouts: { response: 5s }\n' }, kept: { blue: false, green: false, plain: true } },
  { name: 'new timeouts for the plain service', edit: { plain: ', timeouts: { response: 5s }' }, kept: { blue: true, green: true, plain: false } },
];

const titled = CASES.map((c) => {
  const which = (keep: boolean) => (Object.keys(c.kept) as Group[]).filter((g) => c.kept[g] === keep).join(' and ') || 'nothing';
  return { ...c, keeps: which(true), resets: which(false) };
});

test.each(titled)('$name keeps the state of $keeps and resets $resets', { timeout: 15_000 }, async ({ edit, kept }) => {
  const [blue, green, plain] = [await startUpstream('blue'), await startUpstream('green'), await startUpstream('plain')];
  const refused = { blue: `http://127.0.0.1:${await refusedPort()}`, green: `http://127.0.0.1:${await refusedPort()}`, plain: `http://127.0.0.1:${await refusedPort()}` };
  const urls: Urls = { blue: blue.url, green: green.url, plain: plain.url, refused };
  const proxy = await startProxy(config(urls));
  const { app } = proxy;
  const groups: Group[] = ['blue', 'green', 'plain'];

  // Each group's refused endpoint fails once and is ejected; the request is retried and served.
  for (const group of groups) expect(await probe(app, group, {})).toBe(1);
  for (const group of groups) expect(refusedEndpoint(app, group, urls)).toMatchObject({ timesEjected: 1, ejectedUntil: expect.any(Number) });
  for (const group of groups) expect(await probe(app, group, {})).toBe(0);

  await proxy.write(config(urls, edit));
  expect((await app.reload('admin')).result).toBe('success');

  for (const group of groups) {
    expect({ group, timesEjected: refusedEndpoint(app, group, urls)?.timesEjected }).toEqual({ group, timesEjected: kept[group] ? 1 : 0 });
    // Kept: still ejected, so no request reaches it; reset: back in rotation, and it fails again.
    expect({ group, errors: await probe(app, group, edit) }).toEqual({ group, errors: kept[group] ? 0 : 1 });
  }
});
