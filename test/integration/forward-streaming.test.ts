import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { expect, onTestFinished, test } from 'vitest';
import { routesYaml, startProxy } from '../helpers/proxy.js';
import { startUpstream } from '../helpers/upstream.js';

const TOTAL = 64 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 120);
/**
 * What may sit between a writer and a slow reader without the proxy buffering: the kernel's
 * socket buffers on two loopback connections plus a few stream high-water marks. A proxy that
 * buffered bodies would let the writer run ahead by most of the 64 MiB.
 */
const MAX_LEAD = 32 * 1024 * 1024;

/** Reads from `stream` with a pause after every MiB, the way a slow peer drains its socket. */
function readSlowly(stream: NodeJS.ReadableStream, onBytes: (n: number) => void): Promise<void> {
  let sincePause = 0;
  stream.on('data', (chunk: Buffer) => {
    onBytes(chunk.length);
    sincePause += chunk.length;
    if (sincePause >= 1024 * 1024) {
      sincePause = 0;
      stream.pause();
      setTimeout(() => stream.resume(), 10);
    }
  });
  return new Promise((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('error', reject);
  });
}

/** Writes TOTAL bytes, one chunk at a time, waiting for 'drain' whenever the stream says so. */
async function writeAll(stream: NodeJS.WritableStream, onBytes: (n: number) => void): Promise<void> {
  for (let sent = 0; sent < TOTAL; sent += CHUNK.length) {
    const more = stream.write(CHUNK);
    onBytes(CHUNK.length);
    if (!more) await once(stream, 'drain');
  }
}

async function proxyTo(url: string) {
  const proxy = await startProxy(routesYaml(`services:\n  legacy: { url: ${url} }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`));
  return { proxy, port: Number(new URL(proxy.app.proxyUrl).port) };
}

test('a 64 MiB upload to a slowly reading upstream is streamed, not buffered', async () => {
  let written = 0;
  let consumed = 0;
  let maxLead = 0;
  let upstreamDone: Promise<void> | undefined;
  const legacy = await startUpstream('legacy', (req, res) => {
    upstreamDone = readSlowly(req, (n) => {
      consumed += n;
      maxLead = Math.max(maxLead, written - consumed);
    }).then(() => void res.end(String(consumed)));
  });
  const { port } = await proxyTo(legacy.url);

  const client = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { 'content-length': TOTAL } });
  onTestFinished(() => void client.destroy());
  const response = once(client, 'response') as Promise<[IncomingMessage]>;
  await writeAll(client, (n) => (written += n));
  client.end();
  const [res] = await response;
  let body = '';
  for await (const chunk of res) body += String(chunk);
  await upstreamDone;

  expect(res.statusCode).toBe(200);
  expect(Number(body)).toBe(TOTAL);
  expect(maxLead).toBeLessThan(MAX_LEAD);
  expect(maxLead).toBeGreaterThan(0);
});

test('a 64 MiB download to a slowly reading client is streamed, not buffered', async () => {
  let written = 0;
  let consumed = 0;
  let maxLead = 0;
  const legacy = await startUpstream('legacy', (_req, res) => {
    res.writeHead(200, { 'content-length': TOTAL });
    void writeAll(res, (n) => (written += n)).then(() => res.end());
  });
  const { port } = await proxyTo(legacy.url);

  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.write('GET /download HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
  await readSlowly(socket, (n) => {
    consumed += n;
    maxLead = Math.max(maxLead, written - consumed);
  });

  expect(consumed).toBeGreaterThan(TOTAL);
  expect(consumed).toBeLessThan(TOTAL + 1024);
  expect(maxLead).toBeLessThan(MAX_LEAD);
});

test('a chunked request body passes through intact and still chunked', async () => {
  const legacy = await startUpstream('legacy', (req, res) => {
    const hash = createHash('sha256');
    req.on('data', (chunk: Buffer) => hash.update(chunk));
    req.on('end', () => res.end(JSON.stringify({ te: req.headers['transfer-encoding'] ?? null, length: req.headers['content-length'] ?? null, sha: hash.digest('hex') })));
  });
  const { port } = await proxyTo(legacy.url);
  const parts = Array.from({ length: 40 }, () => randomBytes(25_000));
  const client = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: '/chunked' });
  onTestFinished(() => void client.destroy());
  const response = once(client, 'response') as Promise<[IncomingMessage]>;
  for (const part of parts) if (!client.write(part)) await once(client, 'drain');
  client.end();
  const [res] = await response;
  let body = '';
  for await (const chunk of res) body += String(chunk);
  expect(res.statusCode).toBe(200);
  expect(JSON.parse(body)).toEqual({ te: 'chunked', length: null, sha: createHash('sha256').update(Buffer.concat(parts)).digest('hex') });
});

test('a chunked response passes through intact', async () => {
  const parts = Array.from({ length: 20 }, () => randomBytes(10_000));
  const legacy = await startUpstream('legacy', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    for (const part of parts) res.write(part);
    res.end();
  });
  const { port } = await proxyTo(legacy.url);
  const client = httpRequest({ host: '127.0.0.1', port, path: '/' });
  onTestFinished(() => void client.destroy());
  client.end();
  const [res] = (await once(client, 'response')) as [IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  expect(res.headers['transfer-encoding']).toBe('chunked');
  expect(Buffer.concat(chunks).equals(Buffer.concat(parts))).toBe(true);
});
