// The headline ratio again, in alternating rounds with every proxy running at once.
import { join } from 'node:path';
import { startPinned, stop, waitForHttp } from './children.js';
import { writeProxyConf } from './nginx.js';
import { childPids } from './proc.js';
import { NAMES } from './report.js';

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
