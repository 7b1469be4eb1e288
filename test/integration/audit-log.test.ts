import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { expect, test } from 'vitest';
import { EVENT } from '../../src/observe/log.js';
import { routesYaml, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';
import { BIN } from '../helpers/child.js';

/*
 * `auditLog` on a running proxy: a record per reload that changed something or failed, per
 * blue/green cutover, per operator edit; and an audit file that cannot be written never costs a
 * request or a reload.
 */


type AuditRecord = Record<string, unknown> & { time: string; kind: string };

const records = async (proxy: TestProxy, name = 'audit.jsonl'): Promise<AuditRecord[]> => {
  await proxy.app.audit.settled();
  const text = await readFile(join(proxy.dir, name), 'utf8');
  return text.trimEnd().split('\n').map((line) => JSON.parse(line) as AuditRecord);
};

/** A blue/green `orders` with the given active colour, and an audit log beside the file. */
async function bluegreen(active: 'blue' | 'green', extra = '') {
  const blue = await startUpstream('blue');
  const green = await startUpstream('green');
  const yaml = (colour: string, more = extra) =>
    routesYaml(`auditLog: audit.jsonl
services:
  orders:
    blue: { url: ${blue.url} }
    green: { url: ${green.url} }
    active: ${colour}
routes:
  - name: orders
    match: { path: / }
    to: orders
${more}`);
  return { yaml, initial: yaml(active) };
}

const served = async (proxy: TestProxy) => {
  const res = await request(`${proxy.app.proxyUrl}/x`);
  await res.body.dump();
  return { status: res.statusCode, by: res.headers['x-upstream'] };
};

test('start, a reload, an unchanged reload and a rejected one: one record each for what happened', async () => {
  const { yaml, initial } = await bluegreen('blue');
  const proxy = await startProxy(initial);
  const first = proxy.app.store.current.snapshot.hash;

  await proxy.write(yaml('blue', '  - name: extra\n    match: { path: /extra }\n    to: orders\n'));
  const good = await proxy.app.reload('admin');
  expect(good.result).toBe('success');
  // Nothing changed: nothing to record.
  expect((await proxy.app.reload('signal')).result).toBe('unchanged');
  await proxy.write(yaml('blue', '  - name: bad\n    match: { path: /bad }\n    to: nowhere\n'));
  const bad = await proxy.app.reload('admin');
  expect(bad.result).toBe('failure');

  const log = await records(proxy);
  expect(log).toEqual([
    { time: expect.any(String), kind: 'reload', trigger: 'start', result: 'success', hashBefore: null, hashAfter: first },
    { time: expect.any(String), kind: 'reload', trigger: 'admin', result: 'success', hashBefore: first, hashAfter: good.hashAfter },
    {
      time: expect.any(String),
      kind: 'reload',
      trigger: 'admin',
      result: 'failure',
      hashBefore: good.hashAfter,
      hashAfter: bad.hashAfter,
      errors: [`${proxy.file}:16:9 routes.1.to: unknown service "nowhere"`],
    },
  ]);
  for (const record of log) expect(new Date(record.time).toISOString()).toBe(record.time);
});

test('a cutover and a cut-back: a cutover record per change of the active colour, after its reload', async () => {
  const { yaml, initial } = await bluegreen('blue');
  const proxy = await startProxy(initial);
  expect(await served(proxy)).toEqual({ status: 200, by: 'blue' });

  await proxy.write(yaml('green'));
  const there = await proxy.app.reload('file');
  expect(await served(proxy)).toEqual({ status: 200, by: 'green' });
  await proxy.write(yaml('blue'));
  const back = await proxy.app.reload('admin');

  const log = (await records(proxy)).slice(1);
  expect(log).toEqual([
    expect.objectContaining({ kind: 'reload', trigger: 'file', result: 'success', hashAfter: there.hashAfter }),
    { time: expect.any(String), kind: 'cutover', service: 'orders', from: 'blue', to: 'green', trigger: 'file', hash: there.hashAfter },
    expect.objectContaining({ kind: 'reload', trigger: 'admin', result: 'success', hashAfter: back.hashAfter }),
    { time: expect.any(String), kind: 'cutover', service: 'orders', from: 'green', to: 'blue', trigger: 'admin', hash: back.hashAfter },
  ]);
  expect(proxy.logs.filter((line) => line.event === 'service.cutover').map((line) => [line.from, line.to])).toEqual([
    ['blue', 'green'],
    ['green', 'blue'],
  ]);
});

test('`ficus cutover` against a running, watching proxy: traffic moves and the audit log tells the story', async () => {
  const { initial } = await bluegreen('blue');
  const proxy = await startProxy(initial, { watch: { debounceMs: 20, pollMs: 100 } });
  expect(await served(proxy)).toEqual({ status: 200, by: 'blue' });

  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [BIN, 'cutover', 'orders', 'green', '-c', proxy.file], { env: { PATH: process.env.PATH ?? '' }, timeout: 10_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
  expect(run).toEqual({ code: 0, stdout: `${proxy.file}:9: active: blue → green\n`, stderr: '' });

  // The watcher has no event to await from here: poll the running generation, with a deadline.
  const deadline = Date.now() + 5_000;
  while (proxy.app.store.current.snapshot.services.get('orders')?.colours?.active !== 'green') {
    if (Date.now() > deadline) throw new Error('the proxy did not pick up the edited file within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(await served(proxy)).toEqual({ status: 200, by: 'green' });

  const log = await records(proxy);
  expect(log.map((r) => r.kind)).toEqual(['reload', 'edit', 'reload', 'cutover']);
  expect(log[1]).toMatchObject({ command: 'cutover', target: 'orders', key: 'services.orders.active', from: 'blue', to: 'green', file: proxy.file });
  expect(log[2]).toMatchObject({ trigger: 'file', result: 'success' });
  expect(log[3]).toMatchObject({ service: 'orders', from: 'blue', to: 'green', trigger: 'file' });
});

test.each([
  { name: 'its directory is missing', auditLog: 'no-such-dir/audit.jsonl', code: 'ENOENT' },
  { name: 'it is a directory', auditLog: '.', code: 'EISDIR' },
])('an audit file that cannot be written ($name): logged at error, and traffic and reloads go on', async ({ auditLog, code }) => {
  const legacy = await startUpstream('legacy');
  const yaml = (path: string) => routesYaml(`auditLog: ${path}\nservices:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - name: rest\n    match: { path: / }\n    to: legacy\n`);
  const proxy = await startProxy(yaml(auditLog));
  expect(await served(proxy)).toEqual({ status: 200, by: 'legacy' });

  await proxy.write(`${yaml(auditLog)}# touched\n`);
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect(await served(proxy)).toEqual({ status: 200, by: 'legacy' });
  await proxy.app.audit.settled();
  const failures = proxy.logs.filter((line) => line.event === EVENT.auditWriteFailed);
  expect(failures.map((line) => [line.level, line.kind, line.code])).toEqual([
    [50, 'reload', code],
    [50, 'reload', code],
  ]);

  // Fixing the path in the file fixes the audit log from that reload on.
  await mkdir(join(proxy.dir, 'logs'));
  await proxy.write(yaml('logs/audit.jsonl'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  expect((await records(proxy, 'logs/audit.jsonl')).map((r) => [r.kind, r.trigger, r.result])).toEqual([['reload', 'admin', 'success']]);
});

test('without auditLog nothing is written anywhere', async () => {
  const legacy = await startUpstream('legacy');
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes: []\n`));
  await proxy.write(routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes: []\n# changed\n`));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  await expect(proxy.app.audit.record('edit', {})).resolves.toBe(false);
  expect(proxy.logs.filter((line) => line.event === EVENT.auditWriteFailed)).toEqual([]);
});
