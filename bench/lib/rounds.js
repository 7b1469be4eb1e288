// The headline ratio again, in alternating rounds with every proxy running at once.
import { join } from 'node:path';
import { startPinned, stop, waitForHttp } from './children.js';
import { writeProxyConf } from './nginx.js';
import { childPids } from './proc.js';

const NAMES = { nginx: 'nginx', minimal: 'minimal undici', ficus: 'ficus' };

/**
 * Small-response req/s and CPU per request of nginx, the minimal undici proxy and ficus, in
 * `rounds` rounds that each visit every proxy, starting with a different one each time. The
 * host's noise drifts over minutes: a ratio of two runs taken minutes apart carries the drift,
 * while the ratio within one round mostly cancels it, and the spread of the rounds shows it.
 */
export async function alternatingRounds(o) {
  const { targets, dir, app, sink, ports, proxyCpu, genCpu, connections, log } = o;
  const proxies = [];
  const url = (port) => `http://127.0.0.1:${port}/bench/small`;
  try {
    if (targets.includes('nginx')) {
      const conf = writeProxyConf(dir, { port: ports.nginx, app, sink });
      const handle = startPinned(proxyCpu, 'nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'rounds-nginx-error.log')], { stderr: join(dir, 'rounds-nginx.err') });
      proxies.push({ name: 'nginx', handle, signal: 'SIGQUIT', url: url(ports.nginx) });
      await waitForHttp(url(ports.nginx), 15_000, handle);
      proxies.at(-1).pid = childPids(handle.pid)[0];
      if (!proxies.at(-1).pid) throw new Error('nginx worker not found');
    }
    if (targets.includes('minimal')) {
      const handle = startPinned(proxyCpu, process.execPath, [o.minimalScript, '--port', String(ports.minimal), '--upstream', `http://${app}`, '--sink', `http://${sink}`], { stderr: join(dir, 'rounds-minimal.err') });
      proxies.push({ name: 'minimal', handle, pid: handle.pid, url: url(ports.minimal) });
      await waitForHttp(url(ports.minimal), 15_000, handle);
    }
    const handle = startPinned(proxyCpu, process.execPath, o.ficusArgs, { stdout: join(o.logDir, 'ficus-rounds-access.log'), stderr: join(dir, 'rounds-ficus.err') });
    proxies.push({ name: 'ficus', handle, pid: handle.pid, url: url(ports.ficus) });
    await waitForHttp(`http://127.0.0.1:${ports.admin}/readyz`, 15_000, handle);

    for (const p of proxies) await o.wrk(genCpu, p.url, { connections, seconds: o.warmupSeconds });
    const perRound = [];
    for (let r = 0; r < o.rounds; r++) {
      const round = {};
      for (let i = 0; i < proxies.length; i++) {
        const p = proxies[(i + r) % proxies.length];
        log(`rounds: ${r + 1} of ${o.rounds}, ${NAMES[p.name]}, ${o.seconds} s`);
        const t = await o.throughput(p.url, p.pid, o.seconds);
        const s = t.socketErrors;
        round[p.name] = { reqPerSec: t.reqPerSec, cpuUsPerReq: t.cpuUsPerReq, errors: t.non2xx + s.connect + s.read + s.write + s.timeout };
      }
      perRound.push(round);
    }
    return { names: proxies.map((p) => p.name), perRound, seconds: o.seconds };
  } finally {
    for (const p of proxies) await stop(p.handle, p.signal);
  }
}

export function median(values) {
  const sorted = values.filter((v) => v !== undefined && !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Medians over the rounds: each proxy's req/s and CPU, and ficus's per-round ratios. */
export function roundsSummary(rounds) {
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

export function roundsSection(rounds, connections) {
  const summary = roundsSummary(rounds);
  const names = rounds.names;
  const num = (v, digits = 0) => (v === undefined ? '—' : v.toFixed(digits).replace(/\B(?=(\d{3})+(?!\d))/g, digits ? '' : ','));
  const x = (v) => (v === undefined ? '—' : `${v.toFixed(2)}×`);
  const ratios = (r) => [r.ficus && r.nginx ? r.ficus.reqPerSec / r.nginx.reqPerSec : undefined, r.ficus && r.minimal ? r.ficus.reqPerSec / r.minimal.reqPerSec : undefined];
  const lines = [
    `Small responses in ${rounds.perRound.length} alternating rounds (wrk, ${connections} conns, ${rounds.seconds} s each; every proxy running, each round starting with the next one):`,
    '',
    `| round | ${names.map((n) => `${NAMES[n]} req/s`).join(' | ')} | ${names.map((n) => `${NAMES[n]} µs CPU/req`).join(' | ')} | ficus ÷ nginx | ficus ÷ minimal undici |`,
    `|---|${names.map(() => '---:').join('|')}|${names.map(() => '---:').join('|')}|---:|---:|`,
    ...rounds.perRound.map((r, i) => {
      const [n, m] = ratios(r);
      return `| ${i + 1} | ${names.map((k) => num(r[k]?.reqPerSec)).join(' | ')} | ${names.map((k) => num(r[k]?.cpuUsPerReq, 1)).join(' | ')} | ${x(n)} | ${x(m)} |`;
    }),
    `| median | ${names.map((k) => num(summary.reqPerSec[k])).join(' | ')} | ${names.map((k) => num(summary.cpuUsPerReq[k], 1)).join(' | ')} | ${x(summary.ficusToNginx)} | ${x(summary.ficusToMinimal)} |`,
  ];
  return lines.join('\n');
}
