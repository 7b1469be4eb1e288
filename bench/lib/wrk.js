// Closed-loop throughput with wrk, and the parse of its report.
import { runPinned } from './children.js';

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
const SIZE = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/** Runs wrk on `cpu` against `url`; returns requests, req/s, latency percentiles and errors. */
export async function wrk(cpu, url, { connections, seconds }) {
  const output = await runPinned(cpu, 'wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', url], { timeoutMs: (seconds + 30) * 1000 });
  return parseWrk(output);
}

export function parseWrk(text) {
  const number = (re) => {
    const match = re.exec(text);
    return match ? Number(match[1]) : 0;
  };
  const latency = {};
  for (const match of text.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$/gm)) {
    latency[`p${match[1]}`] = Number(match[2]) * (UNIT_MS[match[3]] ?? 1);
  }
  const read = /requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB|TB) read/.exec(text);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    requests: number(/(\d+) requests in/),
    reqPerSec: number(/Requests\/sec:\s+([\d.]+)/),
    bytesRead: read ? Number(read[1]) * (SIZE[read[2]] ?? 1) : 0,
    latencyMs: latency,
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: socket ? { connect: Number(socket[1]), read: Number(socket[2]), write: Number(socket[3]), timeout: Number(socket[4]) } : { connect: 0, read: 0, write: 0, timeout: 0 },
    raw: text,
  };
}
