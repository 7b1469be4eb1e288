// Open-loop constant-rate load: request i is *due* at start + i/rate whatever happened to
// earlier requests, and its latency is measured from that due time, not from when it was
// actually written. A stalled proxy therefore shows up as latency for every request that fell
// due during the stall (no coordinated omission, unlike a closed-loop tool such as wrk).
// A request never waits for a busy connection: the agent opens another one.
//
// With --baseline, every due request is also sent, at the same instant, straight to the
// upstream: both streams then suffer the same generator and machine noise, and the proxy's
// added latency is the difference of the two in one run (its p99 among them), not of two runs
// made minutes apart.
//
// usage: node bench/open-loop.js --url URL [--baseline URL] [--rate 2000] [--seconds 10] [--warmup 2]
// prints one JSON object: { latencyMs, serviceMs, sendLagMs, sent, completed, errors, non2xx,
// rate, baseline?: { latencyMs, errors, non2xx } }
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    baseline: { type: 'string' },
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    timeout: { type: 'string', default: '5000' },
  },
});
if (!values.url) throw new Error('--url is required');
const targets = [new URL(values.url), ...(values.baseline ? [new URL(values.baseline)] : [])];
const rate = Number(values.rate);
const warmupCount = Math.round(rate * Number(values.warmup));
const measuredCount = Math.round(rate * Number(values.seconds));
const total = warmupCount + measuredCount;
const intervalMs = 1000 / rate;
const timeoutMs = Number(values.timeout);

const agent = new Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 1024 });
const streams = targets.map((url) => ({
  url,
  latency: new Float64Array(measuredCount).fill(Number.NaN),
  service: new Float64Array(measuredCount).fill(Number.NaN),
  lag: new Float64Array(measuredCount).fill(Number.NaN),
  errors: 0,
  non2xx: 0,
}));
let next = 0;
let finished = 0;
let firstMeasuredSend = 0;
let lastMeasuredSend = 0;
const start = performance.now() + 20;

function fire(i) {
  for (const stream of streams) send(stream, i);
}

function send(stream, i) {
  const { url } = stream;
  const due = start + i * intervalMs;
  const sent = performance.now();
  const slot = i - warmupCount;
  if (slot === 0 && stream === streams[0]) firstMeasuredSend = sent;
  if (slot === measuredCount - 1 && stream === streams[0]) lastMeasuredSend = sent;
  let settled = false;
  const settle = (ok) => {
    if (settled) return;
    settled = true;
    const done = performance.now();
    if (slot >= 0) {
      if (ok) {
        stream.latency[slot] = done - due;
        stream.service[slot] = done - sent;
      } else {
        stream.errors++;
      }
      stream.lag[slot] = sent - due;
    }
    if (++finished === total * streams.length) report();
  };
  const req = request({ agent, host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'GET' }, (res) => {
    if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) {
      if (slot >= 0) stream.non2xx++;
    }
    res.on('end', () => settle(true));
    res.on('error', () => settle(false));
    res.resume();
  });
  req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
  req.on('error', () => settle(false));
  req.end();
}

function tick() {
  const now = performance.now();
  while (next < total && start + next * intervalMs <= now) fire(next++);
  // libuv timers have millisecond resolution: sends go out in per-millisecond batches, and the
  // lateness that causes is part of every target's figure (reported as sendLagMs).
  if (next < total) setTimeout(tick, Math.max(1, start + next * intervalMs - performance.now()));
}

function percentiles(values) {
  const sorted = Float64Array.from(values.filter((v) => !Number.isNaN(v))).sort();
  const at = (q) => (sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN));
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: sorted.length ? (sorted[sorted.length - 1] ?? Number.NaN) : Number.NaN, count: sorted.length };
}

function report() {
  const span = (lastMeasuredSend - firstMeasuredSend) / 1000;
  const [main, baseline] = streams;
  process.stdout.write(
    `${JSON.stringify({
      latencyMs: percentiles(main.latency),
      serviceMs: percentiles(main.service),
      sendLagMs: percentiles(main.lag),
      sent: measuredCount,
      completed: measuredCount - main.errors,
      errors: main.errors,
      non2xx: main.non2xx,
      rate: span > 0 ? (measuredCount - 1) / span : 0,
      baseline: baseline ? { latencyMs: percentiles(baseline.latency), errors: baseline.errors, non2xx: baseline.non2xx } : undefined,
    })}\n`,
  );
  agent.destroy();
}

setTimeout(tick, 20);
