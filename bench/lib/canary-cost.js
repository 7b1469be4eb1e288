// What a canary route costs on the hot path (identify the caller, bucket, split, feed both
// sides' windows, the analysis off the path): ficus on the same routes.yaml with and without a
// canary on the benchmarked route, measured back to back, alternating, pinned as for its own run.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getText, startPinned, stop, waitForHttp } from './children.js';
import { wrk } from './wrk.js';

/** The target: a canary route serves at least 95 % of the requests per second of the same route without one. */
export const MAX_CANARY_COST = 0.05;

/**
 * @param {object} o
 * @param {{ without: string, with: string }} o.yaml the two routes files
 * @param {(url: string, pid: number) => Promise<{ reqPerSec: number, cpuUsPerReq?: number, non2xx: number }>} o.throughput
 *   run.js's own measurement, so that these figures read like its others
 */
export async function canaryCost({ yaml, dir, ficusBin, port, adminPort, rounds, warmupSeconds, connections, proxyCpu, genCpu, throughput, log }) {
  const url = `http://127.0.0.1:${port}/bench/small`;
  const runs = { without: [], with: [] };
  const notes = [];
  // Each file in a directory of its own: ficus watches its config's directory, and the access
  // log must not be written there.
  for (const variant of ['without', 'with']) {
    mkdirSync(join(dir, `canary-${variant}`), { recursive: true });
    writeFileSync(join(dir, `canary-${variant}`, 'routes.yaml'), yaml[variant]);
  }
  mkdirSync(join(dir, 'canary-logs'), { recursive: true });
  for (let round = 1; round <= rounds; round++) {
    for (const variant of ['without', 'with']) {
      log(`canary cost, round ${round}/${rounds}: ${variant} a canary`);
      const proxy = startPinned(proxyCpu, process.execPath, [ficusBin, 'start', '-c', join(dir, `canary-${variant}`, 'routes.yaml')], {
        stdout: join(dir, 'canary-logs', `${variant}-${round}.log`),
        stderr: join(dir, 'canary-logs', `${variant}-${round}.err`),
      });
      await waitForHttp(`http://127.0.0.1:${adminPort}/readyz`, 15_000, proxy);
      await wrk(genCpu, url, { connections, seconds: warmupSeconds });
      runs[variant].push(await throughput(url, proxy.pid));
      if (variant === 'with') notes.push(...(await checkCanary(adminPort, round)));
      await stop(proxy);
    }
  }
  const mean = (list, pick) => list.reduce((sum, r) => sum + (pick(r) ?? 0), 0) / list.length;
  const summary = (list) => ({ reqPerSec: mean(list, (r) => r.reqPerSec), cpuUsPerReq: mean(list, (r) => r.cpuUsPerReq), non2xx: list.reduce((n, r) => n + r.non2xx, 0) });
  const without = summary(runs.without);
  const withCanary = summary(runs.with);
  return {
    rounds,
    without,
    with: withCanary,
    ratio: withCanary.reqPerSec / without.reqPerSec,
    cpuRatio: withCanary.cpuUsPerReq / without.cpuUsPerReq,
    notes,
  };
}

/** The canary must have stayed in, and really have split the traffic, for the figure to mean anything. */
async function checkCanary(adminPort, round) {
  const notes = [];
  const status = JSON.parse(await getText(`http://127.0.0.1:${adminPort}/status`));
  const route = status.routes.find((r) => r.name === 'bench');
  if (route?.state !== 'running' || route.weight !== 50) {
    notes.push(`canary cost, round ${round}: the canary was ${route?.state ?? 'missing'} at ${route?.weight ?? '?'} % after the run (${route?.message ?? ''}): that run measured less than a 50 % split.`);
  }
  const metrics = await getText(`http://127.0.0.1:${adminPort}/metrics`);
  const sides = { stable: 0, canary: 0 };
  for (const match of metrics.matchAll(/^ficus_requests_total\{route="bench",[^}]*side="(stable|canary)",code="200"\} (\d+)/gm)) sides[match[1]] += Number(match[2]);
  const share = sides.canary / Math.max(1, sides.canary + sides.stable);
  if (round === 1) notes.push(`canary cost: the canary side served ${(share * 100).toFixed(1)} % of the requests with a canary (anonymous callers, drawn per request; 50 % expected).`);
  return notes;
}

const fmt = (value, digits = 0) => (value === undefined || Number.isNaN(value) ? '—' : Number(value).toFixed(digits));

/** The section BENCHMARKS.md shows under the main table. */
export function canarySection(cost, seconds) {
  const pass = cost.ratio >= 1 - MAX_CANARY_COST;
  return [
    `Cost of a canary route (the benchmarked route with \`canary: { weight: 50, analysis: … }\` or without, the rest of routes.yaml alike; ${cost.rounds} alternating rounds of ${seconds} s each, means):`,
    '',
    '| measure | without canary | with canary | with ÷ without |',
    '|---|---:|---:|---:|',
    `| small response: req/s | ${fmt(cost.without.reqPerSec)} | ${fmt(cost.with.reqPerSec)} | ${cost.ratio.toFixed(3)}× |`,
    `| small response: proxy CPU µs per request | ${fmt(cost.without.cpuUsPerReq, 1)} | ${fmt(cost.with.cpuUsPerReq, 1)} | ${Number.isFinite(cost.cpuRatio) ? `${cost.cpuRatio.toFixed(3)}×` : '—'} |`,
    `| non-2xx responses | ${cost.without.non2xx} | ${cost.with.non2xx} | |`,
    '',
    '| target | measured | verdict |',
    '|---|---:|---|',
    `| canary route req/s within ${MAX_CANARY_COST * 100} % of the same route without | ${((1 - cost.ratio) * 100).toFixed(1)} % slower | ${pass ? 'PASS' : 'FAIL'} |`,
    ...(cost.notes.length ? ['', ...cost.notes.map((n) => `- ${n}`)] : []),
  ].join('\n');
}
