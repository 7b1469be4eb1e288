// Summarizes a V8 .cpuprofile (node --cpu-prof): where the busy time goes, by self time per
// function, by inclusive time, and by area (ficus, undici, node http, pino, prom-client, GC…).
//
// usage: node bench/profile.js FILE.cpuprofile [--top 30]
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const AREAS = [
  ['(garbage collector)', (f) => f.functionName === '(garbage collector)'],
  ['(program: native, syscalls)', (f) => f.functionName === '(program)'],
  ['ficus', (f) => /\/dist\/|\/src\//.test(f.url) && !f.url.includes('node_modules')],
  ['undici', (f) => f.url.includes('node_modules/undici')],
  ['pino', (f) => /node_modules\/(pino|sonic-boom|fast-redact|quick-format|atomic-sleep|thread-stream)/.test(f.url)],
  ['prom-client', (f) => f.url.includes('node_modules/prom-client') || f.url.includes('node_modules/tdigest') || f.url.includes('node_modules/bintrees')],
  ['node http', (f) => /node:_http|node:http|_http_/.test(f.url)],
  ['node net/stream/timers', (f) => /node:(net|stream|internal\/streams|internal\/timers|timers|events|internal\/stream_base|internal\/process\/task_queues|buffer|internal\/buffer)/.test(f.url)],
  ['node other', (f) => f.url.startsWith('node:')],
  ['native (no url)', (f) => f.url === ''],
  ['other js', () => true],
];

export function summarize(profile, top = 30) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const keyOf = (node) => {
    const f = node.callFrame;
    return `${f.functionName || '(anonymous)'} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
  };
  const self = new Map();
  const inclusive = new Map();
  const areas = new Map();
  let busy = 0;
  let idle = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const delta = timeDeltas[i + 1] ?? timeDeltas[i] ?? 0;
    const node = byId.get(samples[i]);
    if (!node) continue;
    if (node.callFrame.functionName === '(idle)') {
      idle += delta;
      continue;
    }
    busy += delta;
    const key = keyOf(node);
    self.set(key, (self.get(key) ?? 0) + delta);
    const area = AREAS.find(([, test]) => test(node.callFrame))?.[0] ?? 'other js';
    areas.set(area, (areas.get(area) ?? 0) + delta);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const k = keyOf(byId.get(id));
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + delta);
    }
  }
  const rank = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000, share: us / busy }));
  return {
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    areas: rank(areas),
    self: rank(self),
    inclusive: rank(new Map([...inclusive].filter(([k]) => !/^\(root\)|^\(program\)/.test(k)))),
  };
}

function shortUrl(url) {
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  const dist = url.lastIndexOf('/dist/');
  if (dist !== -1) return url.slice(dist + 1);
  return url.startsWith('node:') ? url : basename(url);
}

export function formatSummary(summary, requests) {
  const perReq = (ms) => (requests ? ` ${((ms * 1000) / requests).toFixed(2).padStart(6)} µs/req` : '');
  const rows = (list) => list.map((r) => `  ${(r.share * 100).toFixed(1).padStart(5)}% ${r.ms.toFixed(0).padStart(7)} ms${perReq(r.ms)}  ${r.name}`).join('\n');
  return [
    `busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms${requests ? `, ${requests} requests, ${((summary.busyMs * 1000) / requests).toFixed(1)} µs busy per request` : ''}`,
    'by area (self time):',
    rows(summary.areas),
    'top functions by self time:',
    rows(summary.self),
    'top functions by inclusive time:',
    rows(summary.inclusive),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, requests: { type: 'string' } } });
  if (!positionals[0]) throw new Error('usage: node bench/profile.js FILE.cpuprofile [--top N] [--requests N]');
  const summary = summarize(JSON.parse(readFileSync(positionals[0], 'utf8')), Number(values.top));
  process.stdout.write(`${formatSummary(summary, values.requests ? Number(values.requests) : undefined)}\n`);
}
