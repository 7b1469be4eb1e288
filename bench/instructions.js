// Instructions per proxied request, counted by valgrind's callgrind: the minimal undici proxy
// and ficus (on the bench's routes.yaml, access log on) take the same small-response requests,
// a fixed number of them, with instrumentation switched on only around them. The count hardly
// moves between runs (under 1 %), where CPU time on a shared machine moves by 20 % and more:
// it is how a hot-path change is judged before `npm run bench` confirms it in req/s. Every
// thread of the proxy is counted (V8's compiler and GC threads share the proxy's core in the
// bench too); syscalls' kernel time is not, and is the same for both.
//
// usage: node bench/instructions.js [--requests 5000] [--repeat 3] [--targets minimal,ficus[,canary]]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { freePort, killAll, startPinned, stop, waitForHttp } from './lib/children.js';
import { writeUpstreamConf } from './lib/nginx.js';
import { benchRoutesYaml } from './lib/routes.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '5000' },
    repeat: { type: 'string', default: '3' },
    targets: { type: 'string', default: 'minimal,ficus' },
  },
});
const REQUESTS = Number(opts.requests);
const CONNECTIONS = 50;
const log = (message) => process.stderr.write(`instructions: ${message}\n`);
const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

/** `count` GETs of /bench/small over CONNECTIONS keep-alive connections; throws on any non-200. */
async function load(origin, count) {
  const pool = new Pool(origin, { connections: CONNECTIONS, pipelining: 1 });
  let left = count;
  const worker = async () => {
    while (left-- > 0) {
      const res = await pool.request({ path: '/bench/small', method: 'GET' });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`${origin}: status ${res.statusCode}`);
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  await pool.close();
}

function control(pid, ...args) {
  const result = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`callgrind_control ${args.join(' ')}: ${result.stderr}`);
}

/** Instructions per request for one proxy under callgrind: warm-up, then `repeat` counted runs. */
async function measure(name, origin, command, args, dir) {
  const out = join(dir, `${name}.callgrind`);
  const proxy = startPinned(undefined, 'valgrind', ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', `--callgrind-out-file=${out}`, command, ...args], {
    stdout: join(dir, `${name}.out`),
    stderr: join(dir, `${name}.err`),
  });
  try {
    await waitForHttp(`${origin}/bench/small`, 180_000, proxy);
    // Until the JIT has settled: the first thousands of requests run unoptimized code.
    await load(origin, 4 * REQUESTS);
    const perRequest = [];
    for (let i = 0; i < Number(opts.repeat); i++) {
      control(proxy.pid, '-z');
      control(proxy.pid, '-i', 'on');
      await load(origin, REQUESTS);
      control(proxy.pid, '-i', 'off');
      control(proxy.pid, '-d');
      perRequest.push(totalOfNewestDump(dir, name) / REQUESTS);
    }
    return perRequest;
  } finally {
    await stop(proxy, 'SIGKILL');
  }
}

function totalOfNewestDump(dir, name) {
  const dumps = readdirSync(dir).filter((f) => f.startsWith(`${name}.callgrind`));
  const newest = dumps.map((f) => join(dir, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  const total = /^totals: (\d+)/m.exec(readFileSync(newest, 'utf8'))?.[1];
  if (total === undefined) throw new Error(`no totals in ${newest}`);
  return Number(total);
}

async function main() {
  for (const tool of ['valgrind', 'callgrind_control']) if (!has(tool)) throw new Error(`${tool} is needed (Debian package valgrind)`);
  const dir = mkdtempSync(join(tmpdir(), 'ficus-instructions-'));
  process.on('exit', () => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

  const [appPort, proxyPort, adminPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const app = `http://127.0.0.1:${appPort}`;
  const upstream = has('nginx')
    ? startPinned(undefined, 'nginx', ['-p', dir, '-c', writeUpstreamConf(dir, appPort), '-e', join(dir, 'upstream-error.log')])
    : startPinned(undefined, process.execPath, [join(ROOT, 'bench/upstream.js'), '--port', String(appPort)]);
  await waitForHttp(`${app}/bench/small`, 15_000, upstream);

  const origin = `http://127.0.0.1:${proxyPort}`;
  const results = {};
  for (const target of opts.targets.split(',')) {
    log(`${target}: starting under callgrind (slow), ${REQUESTS} requests × ${opts.repeat}`);
    if (target === 'minimal') {
      results.minimal = await measure('minimal', origin, process.execPath, [join(ROOT, 'bench/minimal-proxy.js'), '--port', String(proxyPort), '--upstream', app], dir);
    } else if (target === 'ficus' || target === 'canary') {
      // `canary`: the same routes.yaml with a canary (analysis on) on the benchmarked route.
      const { yaml } = benchRoutesYaml({ port: proxyPort, adminPort, app, sink: app, unused: (i) => `http://127.0.0.1:${10 + i}`, canary: target === 'canary' });
      const config = join(dir, `config-${target}`);
      mkdirSync(config);
      writeFileSync(join(config, 'routes.yaml'), yaml);
      results[target] = await measure(target, origin, process.execPath, [join(ROOT, 'bin/ficus.js'), 'start', '-c', join(config, 'routes.yaml')], dir);
    } else throw new Error(`unknown target ${target}`);
  }
  await stop(upstream, 'SIGQUIT');

  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  process.stdout.write('| proxy | instructions per request (median) | runs | ÷ minimal |\n|---|---:|---|---:|\n');
  for (const [target, runs] of Object.entries(results)) {
    const ratio = results.minimal ? `${(median(runs) / median(results.minimal)).toFixed(3)}×` : '—';
    process.stdout.write(`| ${target} | ${Math.round(median(runs)).toLocaleString('en')} | ${runs.map((r) => Math.round(r / 100) / 10).join(', ')} k | ${ratio} |\n`);
  }
  if (results.ficus && results.canary) process.stdout.write(`\ncanary ÷ ficus: ${(median(results.canary) / median(results.ficus)).toFixed(3)}×\n`);
}

main().catch((error) => {
  process.stderr.write(`instructions: ${error.stack ?? error}\n`);
  process.exit(1);
});
