// The results table, the verdicts against the targets, and the BENCHMARKS.md update.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export const TARGETS = { minRatioToNginx: 0.45, maxAddedP99Ms: 1, maxRssMiB: 200 };
const START = '<!-- bench:results:start -->';
const END = '<!-- bench:results:end -->';
export const NAMES = { direct: 'direct', nginx: 'nginx', minimal: 'minimal undici', ficus: 'ficus' };

const fmt = (value, digits = 0) => (value === undefined || value === null || Number.isNaN(value) ? '—' : Number(value).toFixed(digits).replace(/\B(?=(\d{3})+(?!\d))/g, digits ? '' : ','));
const times = (r) => (r === undefined ? '—' : `${r.toFixed(2)}×`);
const ratio = (a, b) => (a && b ? times(a / b) : '—');

export function verdicts(results, rounds) {
  const ficus = results.ficus;
  const nginx = results.nginx;
  const direct = results.direct;
  const out = [];
  const ofRounds = rounds ? roundsSummary(rounds) : undefined;
  if (ofRounds?.ficusToNginx !== undefined) {
    const r = ofRounds.ficusToNginx;
    out.push({ target: `small-response req/s ≥ ${TARGETS.minRatioToNginx}× nginx (median of the rounds' ratios)`, value: `${r.toFixed(2)}×`, pass: r >= TARGETS.minRatioToNginx });
  } else if (ficus?.small && nginx?.small) {
    const r = ficus.small.reqPerSec / nginx.small.reqPerSec;
    out.push({ target: `small-response req/s ≥ ${TARGETS.minRatioToNginx}× nginx`, value: `${r.toFixed(2)}×`, pass: r >= TARGETS.minRatioToNginx });
  } else {
    out.push({ target: `small-response req/s ≥ ${TARGETS.minRatioToNginx}× nginx`, value: 'nginx not measured', pass: undefined });
  }
  const added = ficus ? addedMs(ficus, direct, 'p99') : undefined;
  if (added !== undefined) {
    out.push({ target: `p99 added latency ≤ ${TARGETS.maxAddedP99Ms} ms at the fixed rate`, value: `${added.toFixed(3)} ms`, pass: added <= TARGETS.maxAddedP99Ms });
  }
  if (ficus?.upload) {
    const peak = ficus.upload.peakMiB;
    out.push({ target: `RSS peak < ${TARGETS.maxRssMiB} MiB during the upload`, value: `${peak.toFixed(1)} MiB`, pass: peak < TARGETS.maxRssMiB });
  }
  if (ficus) {
    const problems = errorCount(ficus) + (ofRounds?.ficusErrors ?? 0);
    out.push({ target: 'no errors and no non-2xx under load', value: problems === 0 ? 'none' : `${problems}`, pass: problems === 0 });
  }
  return out;
}

/**
 * Latency the proxy adds at percentile q: against the direct stream sent on the same schedule
 * in the same run when there is one (noise on the generator's side cancels), else against the
 * direct target's own run.
 */
export function addedMs(r, direct, q) {
  if (!r?.latency) return undefined;
  if (r.latency.baseline) return r.latency.latencyMs[q] - r.latency.baseline.latencyMs[q];
  return direct?.latency ? r.latency.latencyMs[q] - direct.latency.latencyMs[q] : undefined;
}

export function errorCount(r) {
  let n = 0;
  for (const run of [r.small, r.large]) {
    if (!run) continue;
    const s = run.socketErrors;
    n += run.non2xx + s.connect + s.read + s.write + s.timeout;
  }
  if (r.latency) n += r.latency.errors + r.latency.non2xx + (r.latency.baseline ? r.latency.baseline.errors + r.latency.baseline.non2xx : 0);
  if (r.upload && (r.upload.status !== 200 || r.upload.upstreamBytes !== r.upload.bytes)) n += 1;
  return n;
}

export function table(results, options) {
  const order = ['direct', 'nginx', 'minimal', 'ficus'].filter((k) => results[k]);
  const head = `| measure | ${order.map((k) => NAMES[k]).join(' | ')} | ficus ÷ nginx | ficus ÷ direct |`;
  const sep = `|---|${order.map(() => '---:').join('|')}|---:|---:|`;
  const row = (label, pick, digits = 0, ratios = true) => {
    const values = order.map((k) => pick(results[k]));
    const f = pick(results.ficus);
    return `| ${label} | ${values.map((v) => fmt(v, digits)).join(' | ')} | ${ratios ? ratio(f, pick(results.nginx)) : '—'} | ${ratios ? ratio(f, pick(results.direct)) : '—'} |`;
  };
  const p = (r, key, q) => r?.latency?.[key]?.[q];
  return [
    head,
    sep,
    row(`small response: req/s (wrk, ${options.connections} conns, ${options.seconds} s)`, (r) => r?.small?.reqPerSec),
    row('small response: proxy CPU µs per request', (r) => r?.small?.cpuUsPerReq, 1),
    row('small response: wrk p99 ms (closed loop)', (r) => r?.small?.latencyMs.p99, 2, false),
    row('16 KiB response: req/s', (r) => r?.large?.reqPerSec),
    row('16 KiB response: MiB/s of body', (r) => (r?.large ? (r.large.reqPerSec * 16) / 1024 : undefined), 1),
    row('16 KiB response: proxy CPU µs per request', (r) => r?.large?.cpuUsPerReq, 1),
    row(`p50 ms at ${options.rate} req/s (open loop)`, (r) => p(r, 'latencyMs', 'p50'), 3),
    row(`p99 ms at ${options.rate} req/s (open loop)`, (r) => p(r, 'latencyMs', 'p99'), 3),
    row(`p99.9 ms at ${options.rate} req/s (open loop)`, (r) => p(r, 'latencyMs', 'p999'), 3, false),
    row('direct p99 ms in the same run (paired stream)', (r) => r?.latency?.baseline?.latencyMs.p99, 3, false),
    row('p50 added vs direct (paired), ms', (r) => (r === results.direct ? undefined : addedMs(r, results.direct, 'p50')), 3, false),
    row('p99 added vs direct (paired), ms', (r) => (r === results.direct ? undefined : addedMs(r, results.direct, 'p99')), 3, false),
    row(`proxy CPU µs per request at ${options.rate} req/s`, (r) => r?.latency?.cpuUsPerReq, 1),
    row('RSS before upload, MiB', (r) => r?.upload?.beforeMiB, 1),
    row(`RSS peak during ${options.uploadMib} MiB upload, MiB`, (r) => r?.upload?.peakMiB, 1),
    row('upload MiB/s', (r) => r?.upload?.mibPerSec, 0),
    row('errors (non-2xx, socket, timeouts, bad upload)', (r) => (r ? errorCount(r) : undefined), 0, false),
    row('proxy process CPU during small-response run, %', (r) => (r?.small?.proxyCpuShare !== undefined ? r.small.proxyCpuShare * 100 : undefined), 0, false),
    row('proxy core busy (any process) during it, %', (r) => (r?.small?.proxyCoreBusy !== undefined ? r.small.proxyCoreBusy * 100 : undefined), 0, false),
    row('generator core busy during small-response run, %', (r) => (r?.small ? r.small.genCoreBusy * 100 : undefined), 0, false),
  ].join('\n');
}

function median(values) {
  const sorted = values.filter((v) => v !== undefined && !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Medians over the rounds: each proxy's req/s and CPU, and ficus's per-round ratios. */
function roundsSummary(rounds) {
  const perRatio = (other) => rounds.perRound.map((r) => (r.ficus && r[other] ? r.ficus.reqPerSec / r[other].reqPerSec : undefined));
  const of = (name, key) => median(rounds.perRound.map((r) => r[name]?.[key]));
  return {
    reqPerSec: Object.fromEntries(rounds.names.map((n) => [n, of(n, 'reqPerSec')])),
    cpuUsPerReq: Object.fromEntries(rounds.names.map((n) => [n, of(n, 'cpuUsPerReq')])),
    ficusToNginx: median(perRatio('nginx')),
    ficusToMinimal: median(perRatio('minimal')),
    ficusErrors: rounds.perRound.reduce((n, r) => n + (r.ficus?.errors ?? 0), 0),
  };
}

function roundsSection(rounds, connections) {
  const summary = roundsSummary(rounds);
  const names = rounds.names;
  const lines = [
    `Small responses in ${rounds.perRound.length} alternating rounds (wrk, ${connections} conns, ${rounds.seconds} s each; every proxy running, each round starting with the next one):`,
    '',
    `| round | ${names.map((n) => `${NAMES[n]} req/s`).join(' | ')} | ${names.map((n) => `${NAMES[n]} µs CPU/req`).join(' | ')} | ficus ÷ nginx | ficus ÷ minimal undici |`,
    `|---|${names.map(() => '---:').join('|')}|${names.map(() => '---:').join('|')}|---:|---:|`,
    ...rounds.perRound.map(
      (r, i) =>
        `| ${i + 1} | ${names.map((k) => fmt(r[k]?.reqPerSec)).join(' | ')} | ${names.map((k) => fmt(r[k]?.cpuUsPerReq, 1)).join(' | ')} | ${ratio(r.ficus?.reqPerSec, r.nginx?.reqPerSec)} | ${ratio(r.ficus?.reqPerSec, r.minimal?.reqPerSec)} |`,
    ),
    `| median | ${names.map((k) => fmt(summary.reqPerSec[k])).join(' | ')} | ${names.map((k) => fmt(summary.cpuUsPerReq[k], 1)).join(' | ')} | ${times(summary.ficusToNginx)} | ${times(summary.ficusToMinimal)} |`,
  ];
  return lines.join('\n');
}

export function resultsSection({ results, rounds, options, machine, notes, profile }) {
  const v = verdicts(results, rounds);
  const mark = (pass) => (pass === undefined ? 'n/a' : pass ? 'PASS' : 'FAIL');
  return [
    `Run on ${machine.date}: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}, ${machine.nginx}, ${machine.wrk}.`,
    `Load average at start: ${machine.load}. Proxy on CPU ${options.proxyCpu}; load generator${options.upstreamCpuNote} on CPU ${options.genCpu}. Upstream: ${options.upstreamDescription}.`,
    `ficus build: ${machine.build}. ficus config: ${options.routeCount} routes, the benchmarked route is number ${options.benchIndex + 1}; metrics and access log on (log written to a file).`,
    '',
    table(results, options),
    ...(rounds ? ['', roundsSection(rounds, options.connections)] : []),
    '',
    '| target | measured | verdict |',
    '|---|---:|---|',
    ...v.map((x) => `| ${x.target} | ${x.value} | ${mark(x.pass)} |`),
    ...(notes.length ? ['', 'Notes:', ...notes.map((n) => `- ${n}`)] : []),
    ...(profile ? ['', `CPU profile of ficus under the small-response load (${profile.requests} requests, self time by area):`, '', '```', profile.text, '```'] : []),
  ].join('\n');
}

const METHOD = `# Benchmarks

## How to run

\`\`\`
npm run bench                      # all targets, ~8 minutes, rewrites the results below
npm run bench -- --profile         # also a CPU profile of ficus under load (top functions)
npm run bench -- --seconds 5 --no-write --targets direct,ficus
\`\`\`

Options: \`--seconds\` (each wrk and open-loop run, default 10), \`--connections\` (wrk, 50),
\`--rate\` (open-loop req/s, 2000), \`--upload-mib\` (512), \`--targets\`
(direct,nginx,minimal,ficus,canary), \`--rounds\` (3), \`--canary-rounds\` (2), \`--upstream
nginx|node\`, \`--profile\`, \`--no-write\`. \`--rounds\` measures the small-response figures again
with nginx, the minimal proxy and ficus all running, in alternating rounds of half
\`--seconds\` each; the ratio target is judged on the median of the rounds' own ratios. The
\`canary\` target measures what a canary route costs: ficus on the same routes.yaml with and
without a canary on the benchmarked route, alternating.
Linux only (taskset, /proc). As root it installs \`nginx\` and \`wrk\` with apt-get when missing;
without nginx the nginx column is skipped and the upstream is the node:http one.

## Method

- Everything runs on loopback on one machine with two cores. The proxy under test (nginx, the
  minimal undici proxy, or ficus) is pinned to one core; the load generator, the upstreams and
  this script are pinned to the other, so the proxy's core does nothing but proxying and its
  CPU time per request (from /proc/PID/stat) is a clean figure. Each proxy is started fresh for
  its turn and stopped after it.
- Targets: *direct* (the generator talks to the upstream: the ceiling of the generator core),
  *nginx* (one worker, keep-alive upstream pool, the same forwarding headers as ficus, a
  buffered access log), *minimal undici* (bench/minimal-proxy.js: about the least a streaming
  undici proxy does; ficus's distance to it is the price of its features), *ficus* (built from
  dist, \`ficus start -c\` on a generated routes.yaml of 50+ routes: prefixes, exact paths,
  methods, hosts, headers, regexes, queries, local responses; the benchmarked route near the
  end; metrics on; access log on, to a file).
- Upstream: nginx serving the responses from memory / a cached 16 KiB file, because it is the
  cheapest server available. It shares the generator's core, so the cheaper it is, the less
  the generator core caps the proxies: with a node:http upstream (~25 µs per request) that core
  saturates before nginx-as-proxy does and compresses every ratio towards 1. The upload sink is
  a node:http server that counts the bytes it reads (so the upload is verified end to end).
- Throughput: wrk, one thread, keep-alive, after a 3 s warm-up; a 13-byte and a 16 KiB body.
- Rounds: this machine's noise drifts over minutes (the same build has measured 61 and 78 µs
  per request seven minutes apart), and each target's turn above comes minutes after the
  previous one's. So the small-response run is repeated with every proxy running at once, in
  alternating rounds, each round starting with the next proxy; the ratio target is judged on
  the median of the per-round ratios, and the rounds' spread shows how noisy the run was.
- Latency: wrk is closed-loop (a slow response delays the next request, hiding stalls), so
  p50/p99 come from bench/open-loop.js: requests are due at a fixed rate whatever earlier ones
  did, a request never waits for a busy connection, and latency is measured from the *due*
  time (no coordinated omission). For a proxy, every due request is also sent at the same
  instant straight to the upstream: "added" latency is the proxy stream's percentile minus the
  direct stream's, in the same run, so the generator's own delays (its timer has millisecond
  resolution, and it shares its core) cancel out instead of differing between runs.
- Memory: a 512 MiB body generated in memory is streamed with Content-Length through the
  proxy to the sink; the proxy's peak RSS is VmHWM after resetting it (clear_refs) at the start
  of the upload, cross-checked by polling VmRSS every 10 ms.
- Correctness: wrk's non-2xx and socket errors, open-loop errors, the sink's byte count, and
  ficus's own \`ficus_requests_total\` by status code are all reported.

## Results

${START}
${END}
`;

export function writeBenchmarks(file, section) {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : METHOD;
  const base = text.includes(START) && text.includes(END) ? text : METHOD;
  const before = base.slice(0, base.indexOf(START) + START.length);
  const after = base.slice(base.indexOf(END));
  writeFileSync(file, `${before}\n${section}\n${after}`);
}
