// Streams a generated body of --mib MiB to --url with backpressure, and checks that the
// upstream saw every byte (the sink answers {"bytes": N}).
//
// usage: node bench/upload.js --url URL [--mib 512]
// prints one JSON object: { bytes, seconds, mibPerSec, status, upstreamBytes, error? }
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { url: { type: 'string' }, mib: { type: 'string', default: '512' } } });
if (!values.url) throw new Error('--url is required');
const url = new URL(values.url);
const CHUNK = 64 * 1024;
const chunks = (Number(values.mib) * 1024 * 1024) / CHUNK;
const bytes = chunks * CHUNK;
const block = Buffer.alloc(CHUNK, 'ficus-bench ');

let produced = 0;
const body = new Readable({
  highWaterMark: CHUNK,
  read() {
    this.push(produced++ < chunks ? block : null);
  },
});

const started = performance.now();
const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) } });
const response = new Promise((resolve, reject) => {
  req.on('response', (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => (text += chunk));
    res.on('end', () => resolve({ status: res.statusCode, text }));
    res.on('error', reject);
  });
  req.on('error', reject);
});
// An early answer (an error status) may close the connection mid-body: the answer is the result.
const [sent, answered] = await Promise.allSettled([pipeline(body, req), response]);
const seconds = (performance.now() - started) / 1000;
const { status = 0, text = '' } = answered.status === 'fulfilled' ? answered.value : {};
let upstreamBytes = -1;
try {
  upstreamBytes = JSON.parse(text).bytes;
} catch {
  // not the sink's answer: reported as -1
}
const error = answered.status === 'rejected' ? String(answered.reason) : sent.status === 'rejected' && status === 200 ? String(sent.reason) : undefined;
process.stdout.write(`${JSON.stringify({ bytes, seconds, mibPerSec: bytes / 1024 / 1024 / seconds, status, upstreamBytes, error })}\n`);
