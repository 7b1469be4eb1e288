// npm run bench: direct, nginx, a minimal undici proxy and ficus, measured in one run on
// loopback, the proxy pinned to one core and everything else to the other. See BENCHMARKS.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, getText, killAll, runPinned, startPinned, stop, waitForHttp } from './lib/children.js';
import { writeProxyConf, writeUpstreamConf } from './lib/nginx.js';
import { busyShare, stealShare, childPids, coreTimes, cpuModel, cpuSeconds, loadAverage, memory, resetPeak } from './lib/proc.js';
import { resultsSection, writeBenchmarks } from './lib/report.js';
import { canaryCost, canarySection } from './lib/canary-cost.js';
import { alternatingRounds } from './lib/rounds.js';
import { benchRoutesYaml } from './lib/routes.js';
import { wrk } from './lib/wrk.js';
import { formatSummary, summarize } from './profile.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  allowNegative: true,
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    rate: { type: 'string', default: '2000' },
    'upload-mib': { type: 'string', default: '512' },
    targets: { type: 'string', default: 'direct,nginx,minimal,ficus,canary' },
    'canary-rounds': { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    upstream: { type: 'string' },
    ficus: { type: 'string' },
    profile: { type: 'boolean', default: false },
    write: { type: 'boolean', default: true },
  },
});
const SECONDS = Number(opts.seconds);
const CONNECTIONS = Number(opts.connections);
const RATE = Number(opts.rate);
const UPLOAD_MIB = Number(opts['upload-mib']);
const WARMUP_SECONDS = 3;
// cpus() counts the machine's CPUs, not this process's affinity (one, once re-executed pinned).
const PINNED = cpus().length >= 2;
const PROXY_CPU = PINNED ? 0 : undefined;
const GEN_CPU = PINNED ? 1 : undefined;

// This script polls /proc during the upload: it runs on the generator's core, not the proxy's.
if (PINNED && !process.env.FICUS_BENCH_PINNED) {
  const child = spawnSync('taskset', ['-c', String(GEN_CPU), process.execPath, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, FICUS_BENCH_PINNED: '1' } });
  process.exit(child.status ?? 1);
}

const log = (message) => process.stderr.write(`bench: ${message}\n`);
const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

function ensureTools() {
  const missing = ['wrk', 'nginx'].filter((tool) => !has(tool));
  if (missing.length && process.getuid?.() === 0 && has('apt-get')) {
    log(`installing ${missing.join(' ')} with apt-get`);
    const install = () => spawnSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
    if (!install()) {
      spawnSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'] });
      install();
    }
  }
  if (!has('wrk')) throw new Error('wrk is not installed (apt-get install wrk)');
  if (!has('nginx')) log('nginx is not installed: the nginx column is skipped and the upstream is node:http');
  return has('nginx');
}

function version(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return `${result.stdout}${result.stderr}`.split('\n')[0]?.trim() || 'unknown';
}

/** Which ficus was measured: the commit, and whether the working tree differed from it. */
function buildOf(root) {
  const git = (args) => spawnSync('git', ['-C', root, ...args], { encoding: 'utf8' });
  const rev = git(['rev-parse', '--short', 'HEAD']);
  if (rev.status !== 0) return root === ROOT ? 'this checkout' : root;
  const dirty = git(['status', '--porcelain', '--', 'src']).stdout.trim() !== '';
  return `${rev.stdout.trim()}${dirty ? ' with uncommitted changes in src/' : ''}`;
}

async function countLines(file) {
  if (!existsSync(file)) return 0;
  let n = 0;
  for await (const chunk of createReadStream(file)) for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++;
  return n;
}

/** wrk against `url`, with the proxy's CPU time and both cores' busy share over the run. */
async function throughput(url, proxyPid, seconds = SECONDS) {
  const cpu0 = proxyPid ? cpuSeconds(proxyPid) : 0;
  const proxyCore0 = PINNED ? coreTimes(PROXY_CPU) : undefined;
  const gen0 = PINNED ? coreTimes(GEN_CPU) : undefined;
  const started = performance.now();
  const result = await wrk(GEN_CPU, url, { connections: CONNECTIONS, seconds });
  const elapsed = (performance.now() - started) / 1000;
  const cpu = proxyPid ? cpuSeconds(proxyPid) - cpu0 : undefined;
  return {
    ...result,
    raw: undefined,
    cpuUsPerReq: cpu !== undefined && result.requests ? (cpu * 1e6) / result.requests : undefined,
    proxyCoreBusy: proxyPid && PINNED ? busyShare(proxyCore0, coreTimes(PROXY_CPU)) : undefined,
    proxyCpuShare: cpu !== undefined ? cpu / elapsed : undefined,
    genCoreBusy: PINNED ? busyShare(gen0, coreTimes(GEN_CPU)) : 0,
    steal: PINNED ? Math.max(stealShare(proxyCore0, coreTimes(PROXY_CPU)), stealShare(gen0, coreTimes(GEN_CPU))) : 0,
  };
}

/** Open-loop latency; with `baseline`, the same schedule also goes straight to the upstream. */
async function openLoop(url, proxyPid, baseline) {
  const cpu0 = proxyPid ? cpuSeconds(proxyPid) : 0;
  const args = [join(ROOT, 'bench/open-loop.js'), '--url', url, '--rate', String(RATE), '--seconds', String(SECONDS), '--warmup', '2', ...(baseline ? ['--baseline', baseline] : [])];
  const out = await runPinned(GEN_CPU, process.execPath, args, { timeoutMs: (SECONDS + 30) * 1000 });
  const result = JSON.parse(out);
  // The proxy's CPU over warm-up + measured requests, per request.
  const cpu = proxyPid ? cpuSeconds(proxyPid) - cpu0 : undefined;
  return { ...result, cpuUsPerReq: cpu !== undefined ? (cpu * 1e6) / (RATE * (SECONDS + 2)) : undefined };
}

async function upload(url, proxyPid) {
  const before = proxyPid ? memory(proxyPid) : undefined;
  const hwmReset = proxyPid ? resetPeak(proxyPid) : false;
  let polledKiB = before?.rssKiB ?? 0;
  let polling = true;
  const poller = (async () => {
    while (polling && proxyPid) {
      const m = memory(proxyPid);
      if (m) polledKiB = Math.max(polledKiB, m.rssKiB);
      await sleep(10);
    }
  })();
  const out = await runPinned(GEN_CPU, process.execPath, [join(ROOT, 'bench/upload.js'), '--url', url, '--mib', String(UPLOAD_MIB)], { timeoutMs: 180_000 });
  polling = false;
  await poller;
  const after = proxyPid ? memory(proxyPid) : undefined;
  const result = JSON.parse(out);
  const peakKiB = Math.max(polledKiB, hwmReset ? (after?.hwmKiB ?? 0) : 0);
  return { ...result, beforeMiB: before ? before.rssKiB / 1024 : undefined, peakMiB: proxyPid ? peakKiB / 1024 : undefined, hwmReset };
}

async function measure(name, base, proxyPid, uploadUrl = `${base}/upload`, directBase = undefined) {
  log(`${name}: warm-up ${WARMUP_SECONDS} s`);
  await wrk(GEN_CPU, `${base}/bench/small`, { connections: CONNECTIONS, seconds: WARMUP_SECONDS });
  log(`${name}: small responses, ${SECONDS} s`);
  const small = await throughput(`${base}/bench/small`, proxyPid);
  log(`${name}: 16 KiB responses, ${SECONDS} s`);
  const large = await throughput(`${base}/bench/16k`, proxyPid);
  log(`${name}: open loop at ${RATE} req/s, ${SECONDS} s`);
  const latency = await openLoop(`${base}/bench/small`, proxyPid, directBase && `${directBase}/bench/small`);
  log(`${name}: ${UPLOAD_MIB} MiB upload`);
  const up = await upload(uploadUrl, proxyPid);
  log(`${name}: ${fmtRun(small)} | p99 ${latency.latencyMs.p99.toFixed(3)} ms | RSS peak ${up.peakMiB?.toFixed(1) ?? '—'} MiB`);
  return { small, large, latency, upload: up };
}

const fmtRun = (r) => `${Math.round(r.reqPerSec)} req/s${r.cpuUsPerReq ? `, ${r.cpuUsPerReq.toFixed(1)} µs CPU/req` : ''}${r.non2xx ? `, ${r.non2xx} non-2xx` : ''}`;

/** ficus's own view of what it served: ficus_requests_total summed by route and code. */
async function ficusCounts(adminPort) {
  const text = await getText(`http://127.0.0.1:${adminPort}/metrics`);
  const counts = {};
  for (const match of text.matchAll(/^ficus_requests_total\{([^}]*)\} (\d+)/gm)) {
    const labels = Object.fromEntries([...match[1].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const key = `${labels.route || '(none)'} ${labels.code}`;
    counts[key] = (counts[key] ?? 0) + Number(match[2]);
  }
  return counts;
}

async function main() {
  const hasNginx = ensureTools();
  // --ficus compares another checkout's build (a branch, a patch) on the same harness.
  const ficusRoot = opts.ficus ? resolve(opts.ficus) : ROOT;
  if (!existsSync(join(ficusRoot, 'dist/cli.js'))) {
    log(`${ficusRoot}/dist is missing: npm run build`);
    execFileSync('npm', ['run', 'build'], { cwd: ficusRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  const upstreamKind = opts.upstream ?? (hasNginx ? 'nginx' : 'node');
  if (upstreamKind === 'nginx' && !hasNginx) throw new Error('--upstream nginx needs nginx');
  const targets = opts.targets.split(',').filter((t) => t !== 'nginx' || hasNginx);
  const dir = mkdtempSync(join(tmpdir(), 'ficus-bench-'));
  // nginx started as root serves files as an unprivileged user: the static files must be readable.
  chmodSync(dir, 0o755);
  process.on('exit', () => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

  const machine = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu: cpuModel(),
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    nginx: hasNginx ? version('nginx', ['-v']).replace('nginx version: ', '') : 'nginx not installed',
    wrk: version('wrk', ['-v']).split(' [')[0] ?? 'wrk',
    load: loadAverage(),
    build: buildOf(ficusRoot),
  };
  if (!PINNED) log('fewer than 2 CPUs: nothing is pinned and the figures mean little');
  if (Number(machine.load.split(' ')[0]) > 0.5) log(`load average is ${machine.load}: other work on this machine will skew the figures`);

  const [appPort, sinkPort, nginxPort, minimalPort, ficusPort, adminPort] = await Promise.all(Array.from({ length: 6 }, freePort));
  const app = `127.0.0.1:${appPort}`;
  const sink = `127.0.0.1:${sinkPort}`;
  const upstreams = [];
  upstreams.push(startPinned(GEN_CPU, process.execPath, [join(ROOT, 'bench/upstream.js'), '--port', String(sinkPort)], { stderr: join(dir, 'sink.err') }));
  if (upstreamKind === 'nginx') {
    const conf = writeUpstreamConf(dir, appPort);
    upstreams.push(startPinned(GEN_CPU, 'nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'upstream-error.log')], { stderr: join(dir, 'upstream.err') }));
  } else {
    upstreams.push(startPinned(GEN_CPU, process.execPath, [join(ROOT, 'bench/upstream.js'), '--port', String(appPort)], { stderr: join(dir, 'app.err') }));
  }
  await waitForHttp(`http://${app}/bench/small`, 15_000, upstreams[1]);
  await waitForHttp(`http://${sink}/`, 15_000, upstreams[0]);

  const routes = benchRoutesYaml({ port: ficusPort, adminPort, app: `http://${app}`, sink: `http://${sink}`, unused: (i) => `http://127.0.0.1:${10 + i}` });
  const routesFile = join(dir, 'config', 'routes.yaml');
  const logDir = join(dir, 'logs');
  mkdirSync(dirname(routesFile));
  mkdirSync(logDir);
  writeFileSync(routesFile, routes.yaml);
  const ficusArgs = [join(ficusRoot, 'bin/ficus.js'), 'start', '-c', routesFile];
  const notes = [];
  const results = {};
  let canary;

  for (const target of targets) {
    if (target === 'direct') {
      // The upload goes to the sink directly (the app upstream is static).
      results.direct = await measure('direct', `http://${app}`, undefined, `http://${sink}/upload`);
    } else if (target === 'nginx') {
      const conf = writeProxyConf(dir, { port: nginxPort, app, sink });
      const master = startPinned(PROXY_CPU, 'nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'proxy-error.log')], { stderr: join(dir, 'proxy.err') });
      await waitForHttp(`http://127.0.0.1:${nginxPort}/bench/small`, 15_000, master);
      const worker = childPids(master.pid)[0];
      if (!worker) throw new Error('nginx worker not found');
      results.nginx = await measure('nginx', `http://127.0.0.1:${nginxPort}`, worker, undefined, `http://${app}`);
      await stop(master, 'SIGQUIT');
    } else if (target === 'minimal') {
      const proxy = startPinned(PROXY_CPU, process.execPath, [join(ROOT, 'bench/minimal-proxy.js'), '--port', String(minimalPort), '--upstream', `http://${app}`, '--sink', `http://${sink}`], { stderr: join(dir, 'minimal.err') });
      await waitForHttp(`http://127.0.0.1:${minimalPort}/bench/small`, 15_000, proxy);
      results.minimal = await measure('minimal undici', `http://127.0.0.1:${minimalPort}`, proxy.pid, undefined, `http://${app}`);
      await stop(proxy);
    } else if (target === 'ficus') {
      // Not beside routes.yaml: ficus watches the config's directory (see BENCHMARKS.md).
      const accessLog = join(logDir, 'ficus-access.log');
      const proxy = startPinned(PROXY_CPU, process.execPath, ficusArgs, { stdout: accessLog, stderr: join(dir, 'ficus.err') });
      await waitForHttp(`http://127.0.0.1:${adminPort}/readyz`, 15_000, proxy);
      results.ficus = await measure('ficus', `http://127.0.0.1:${ficusPort}`, proxy.pid, undefined, `http://${app}`);
      const counts = await ficusCounts(adminPort);
      const exit = await stop(proxy);
      const lines = await countLines(accessLog);
      const served = Object.entries(counts).map(([k, v]) => `${k}: ${v}`).join(', ');
      notes.push(`ficus counted (route code: requests) ${served}; ${lines} access-log lines; exit ${exit.code ?? exit.signal} after SIGTERM${exit.stderr.trim() ? `; stderr: ${exit.stderr.trim().slice(0, 300)}` : ''}.`);
      const aborted = Object.entries(counts).filter(([k]) => k.endsWith(' 000')).reduce((a, [, v]) => a + v, 0);
      if (aborted) notes.push(`code 000 (${aborted}) are requests still in flight when wrk stopped and closed its connections (at most ${CONNECTIONS} per wrk run).`);
      const bad = Object.entries(counts).filter(([k]) => !/ (200|000)$/.test(k));
      if (bad.length) notes.push(`UNEXPECTED status codes from ficus: ${bad.map(([k, v]) => `${k}: ${v}`).join(', ')}.`);
    } else if (target === 'canary') {
      const yamlOf = (withCanary) => benchRoutesYaml({ port: ficusPort, adminPort, app: `http://${app}`, sink: `http://${sink}`, unused: (i) => `http://127.0.0.1:${10 + i}`, canary: withCanary }).yaml;
      canary = await canaryCost({
        yaml: { without: yamlOf(false), with: yamlOf(true) },
        dir,
        ficusBin: join(ficusRoot, 'bin/ficus.js'),
        port: ficusPort,
        adminPort,
        rounds: Number(opts['canary-rounds']),
        warmupSeconds: WARMUP_SECONDS,
        connections: CONNECTIONS,
        proxyCpu: PROXY_CPU,
        genCpu: GEN_CPU,
        throughput,
        log,
      });
      log(`canary cost: ${canary.ratio.toFixed(3)}× the req/s without a canary`);
    }
  }

  let rounds;
  if (Number(opts.rounds) > 0 && targets.includes('ficus') && (targets.includes('nginx') || targets.includes('minimal'))) {
    rounds = await alternatingRounds({
      targets,
      dir,
      app,
      sink,
      ports: { nginx: nginxPort, minimal: minimalPort, ficus: ficusPort, admin: adminPort },
      minimalScript: join(ROOT, 'bench/minimal-proxy.js'),
      ficusArgs,
      logDir,
      rounds: Number(opts.rounds),
      seconds: Math.max(3, Math.round(SECONDS / 2)),
      warmupSeconds: WARMUP_SECONDS,
      connections: CONNECTIONS,
      proxyCpu: PROXY_CPU,
      genCpu: GEN_CPU,
      throughput,
      wrk,
      log,
    });
  }

  for (const [name, r] of Object.entries(results)) {
    if (r.small?.proxyCoreBusy !== undefined && r.small.proxyCoreBusy < 0.9) {
      notes.push(`${name}: the proxy core was only ${(r.small.proxyCoreBusy * 100).toFixed(0)}% busy in the small-response run: the generator core (${(r.small.genCoreBusy * 100).toFixed(0)}% busy) capped it, so its req/s understates it; compare CPU µs per request instead.`);
    }
    for (const [run, x] of [['small-response', r.small], ['16 KiB', r.large]]) {
      if (x && x.steal > 0.02) notes.push(`${name}: the hypervisor took ${(x.steal * 100).toFixed(0)}% of a core (steal) during the ${run} run: noisy figures.`);
    }
    if (r.upload && (r.upload.status !== 200 || r.upload.upstreamBytes !== r.upload.bytes)) notes.push(`${name}: upload answered ${r.upload.status}, sink saw ${r.upload.upstreamBytes} of ${r.upload.bytes} bytes.`);
    if (r.upload && r.upload.peakMiB !== undefined && !r.upload.hwmReset) notes.push(`${name}: VmHWM could not be reset; the RSS peak is from 10 ms polling only.`);
  }
  const load = Number(machine.load.split(' ')[0]);
  if (load > 1) {
    const other = Object.entries(results)
      .filter(([, r]) => r.small?.proxyCpuShare !== undefined && r.small.proxyCoreBusy !== undefined)
      .map(([name, r]) => `${name} ${Math.max(0, (r.small.proxyCoreBusy - r.small.proxyCpuShare) * 100).toFixed(0)}%`);
    notes.push(`Other work was running on this machine (load average ${machine.load} at start); share of the proxy's core not used by the proxy itself during the small-response runs (other processes, and interrupt work): ${other.join(', ') || 'n/a'}. Figures from such a run are pessimistic and noisy, the tail latencies most; compare CPU µs per request, and re-run on a quiet machine for the record.`);
  }
  if (results.direct?.latency) notes.push(`open-loop generator's own send lag (due → written), direct run: p50 ${results.direct.latency.sendLagMs.p50.toFixed(3)} ms, p99 ${results.direct.latency.sendLagMs.p99.toFixed(3)} ms (in every target's latency alike).`);

  let profile;
  if (opts.profile && targets.includes('ficus')) profile = await profileFicus(dir, ficusArgs, ficusPort, adminPort);

  for (const handle of upstreams) await stop(handle, 'SIGTERM');

  const options = {
    seconds: SECONDS,
    connections: CONNECTIONS,
    rate: RATE,
    uploadMib: UPLOAD_MIB,
    proxyCpu: PROXY_CPU ?? 'any',
    genCpu: GEN_CPU ?? 'any',
    upstreamCpuNote: ', the upstreams and this script',
    upstreamDescription: upstreamKind === 'nginx' ? 'nginx (one worker) serving from memory / a cached file, plus a node:http upload sink' : 'node:http (bench/upstream.js)',
    routeCount: routes.routeCount,
    benchIndex: routes.benchIndex,
  };
  const main = resultsSection({ results, rounds, options, machine, notes, profile });
  const section = canary ? `${main}\n\n${canarySection(canary, SECONDS)}` : main;
  process.stdout.write(`\n${section}\n`);
  if (opts.write) {
    writeBenchmarks(join(ROOT, 'BENCHMARKS.md'), section);
    log('BENCHMARKS.md updated');
  }
  if (profile) process.stdout.write(`\nFull profile summary (${profile.file}):\n${profile.full}\n`);
}

/** ficus under the small-response load with the V8 sampling profiler on. */
async function profileFicus(dir, ficusArgs, port, adminPort) {
  const profDir = join(dir, 'profile');
  const proxy = startPinned(PROXY_CPU, process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '500', ...ficusArgs], { stdout: join(dir, 'profile-access.log'), stderr: join(dir, 'profile.err') });
  await waitForHttp(`http://127.0.0.1:${adminPort}/readyz`, 15_000, proxy);
  log(`profile: warm-up ${WARMUP_SECONDS} s, then ${SECONDS} s under wrk`);
  const warm = await wrk(GEN_CPU, `http://127.0.0.1:${port}/bench/small`, { connections: CONNECTIONS, seconds: WARMUP_SECONDS });
  const run = await wrk(GEN_CPU, `http://127.0.0.1:${port}/bench/small`, { connections: CONNECTIONS, seconds: SECONDS });
  await stop(proxy);
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no .cpuprofile written');
  const kept = join(tmpdir(), `ficus-bench-${Date.now()}.cpuprofile`);
  execFileSync('cp', [join(profDir, file), kept]);
  const summary = summarize(JSON.parse(readFileSync(kept, 'utf8')), 25);
  const requests = warm.requests + run.requests;
  const areas = summary.areas.map((a) => `${(a.share * 100).toFixed(1).padStart(5)}%  ${a.name}`).join('\n');
  const topSelf = summary.self.slice(0, 12).map((a) => `${(a.share * 100).toFixed(1).padStart(5)}%  ${a.name}`).join('\n');
  return { requests, file: kept, text: `${areas}\n\ntop functions by self time:\n${topSelf}`, full: formatSummary(summary, requests) };
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench: ${error.stack ?? error}\n`);
    process.exit(1);
  },
);
