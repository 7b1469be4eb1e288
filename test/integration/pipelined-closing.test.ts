import { once } from 'node:events';
import { connect, Socket } from 'node:net';
import { request } from 'undici';
import { expect, onTestFinished, test, vi } from 'vitest';
import { metricBy, metricSum } from '../helpers/metrics.js';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { rawExchange } from '../helpers/raw-socket.js';
import { startUpstream } from '../helpers/upstream.js';
import { portOf } from '../helpers/websocket.js';

/** Pipelined requests that are never forwarded, and connections ficus stops reading: counted as nobody's, and let go. */

/** Resolves with `what` when `promise` settles within `ms`, with 'pending' otherwise. */
function within<T>(promise: Promise<unknown>, ms: number, what: T): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  return Promise.race([promise.then(() => what), late]).finally(() => clearTimeout(timer));
}

test('a pipelined request refused 400 in its turn for its malformed body is served by no service in its access line and counts', async () => {
  let release: () => void = () => undefined;
  const slowHeld = new Promise<void>((resolve) => (release = resolve));
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    if (req.url !== '/slow') return void res.end('ok');
    void slowHeld.then(() => res.end('slow'));
  });
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const pending = rawExchange(portOf(proxy.app.proxyUrl), 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\nPOST /bad HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n', { timeoutMs: 5_000 });
  await vi.waitFor(async () => expect(await metricSum(proxy.app, 'ficus_requests_in_flight')).toBe(2));
  release();
  expect((await pending).statuses).toEqual([200, 400]);
  await vi.waitFor(() => expect(proxy.logs.filter((l) => l.event === 'access')).toHaveLength(2));
  const lines = proxy.logs.filter((l) => l.event === 'access').map((l) => [l.path, l.status, l.service]);
  expect(lines).toEqual([
    ['/slow', 200, 'legacy'],
    ['/bad', 400, ''],
  ]);
  expect(await metricBy(proxy.app, 'ficus_requests_total', 'service')).toEqual({ legacy: 1, '': 1 });
});

test('a keep-alive connection closed after malformed bytes behind a request being answered is let go after the linger, though ficus stopped reading it', async () => {
  const legacy = await startUpstream('legacy', (req, res) => {
    req.resume();
    setTimeout(() => res.end('slow'), 200);
  });
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${legacy.url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  const port = portOf(proxy.app.proxyUrl);
  // A client that ends its side too, as any client does on a server's FIN.
  const client: Socket = connect({ port, host: '127.0.0.1' });
  onTestFinished(() => void client.destroy());
  client.on('error', () => undefined);
  let answer = '';
  client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  await once(client, 'connect');
  const clientPort = client.localPort;
  client.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\nJUNK JUNK\r\n\r\n');
  await once(client, 'close');
  expect(answer).toMatch(/^HTTP\/1\.1 200 [^]*slow$/);
  // ficus's own socket for this connection (the test runs the proxy in this process): paused,
  // it never reads the client's FIN, so only the linger (2 s) lets it go.
  const serverSide = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().filter((h) => h instanceof Socket && h.localPort === port && h.remotePort === clientPort);
  expect(serverSide()).toHaveLength(1);
  await vi.waitFor(() => expect(serverSide()).toHaveLength(0), { timeout: 3_500, interval: 100 });
});

test('a queued request whose client left no longer keeps open the pool a reload retired: its idle connections close at once', async () => {
  const quickSockets: Socket[] = [];
  const old = await startUpstream('old', (req, res) => {
    req.resume();
    if (req.url === '/slow') return; // never answered
    quickSockets.push(req.socket);
    res.end('ok');
  });
  const fresh = await startUpstream('fresh');
  const yaml = (services: string, to: string) => routesYaml(`services:\n${services}routes:\n  - { name: rest, match: { path: / }, to: ${to} }\n`);
  const proxy = await startProxy(yaml(`  old: { url: ${old.url} }\n  fresh: { url: ${fresh.url} }\n`, 'old'));
  const client = connect({ port: portOf(proxy.app.proxyUrl), host: '127.0.0.1' });
  onTestFinished(() => void client.destroy());
  client.on('error', () => undefined);
  client.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n');
  await vi.waitFor(() => expect(old.seen.map((s) => s.url)).toEqual(['/slow']));
  // A second, now idle, keep-alive connection in the old pool.
  await (await request(`${proxy.app.proxyUrl}/quick`)).body.dump();
  expect(quickSockets).toHaveLength(1);
  // The reload removes the old service: its pool is retired, held for the queued /next.
  await proxy.write(yaml(`  fresh: { url: ${fresh.url} }\n`, 'fresh'));
  expect((await proxy.app.reload('admin')).result).toBe('success');
  client.destroy();
  // Nothing holds the retired pool now: it closes, and its idle connection with it (not after
  // undici's 4 s keep-alive, nor the 60 s a hold may last).
  expect(await within(once(quickSockets[0] as Socket, 'close'), 1_000, 'closed')).toBe('closed');
});
