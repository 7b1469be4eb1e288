// Readings from /proc: the only honest way to see what a pinned process costs (CPU) and holds (RSS).
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** Clock ticks per second for /proc/PID/stat (USER_HZ); 100 on every Linux the bench targets. */
const TICKS_PER_SECOND = 100;

/** { rssKiB, hwmKiB } from /proc/PID/status, or undefined once the process is gone. */
export function memory(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rssKiB: field(text, 'VmRSS'), hwmKiB: field(text, 'VmHWM') };
  } catch {
    return undefined;
  }
}

function field(text, name) {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0), so a later VmHWM is the peak of one phase. */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** User + system CPU seconds the process has used so far. */
export function cpuSeconds(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields are counted after the last ")".
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/**
 * Busy, stolen and total jiffies of one CPU from /proc/stat. Busy excludes idle, iowait and
 * steal (time the hypervisor ran something else: a sign the figures are noisy).
 */
export function coreTimes(core) {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${core} `));
  if (!line) return { busy: 0, steal: 0, total: 0 };
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  const steal = values[7] ?? 0;
  return { busy: total - (values[3] ?? 0) - (values[4] ?? 0) - steal, steal, total };
}

/** Fraction of time a core was busy between two coreTimes readings. */
export function busyShare(before, after) {
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : 0;
}

/** Fraction of time the hypervisor took from a core between two coreTimes readings. */
export function stealShare(before, after) {
  const total = after.total - before.total;
  return total > 0 ? (after.steal - before.steal) / total : 0;
}

/** Direct children of a process (nginx's workers under its master). */
export function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function cpuModel() {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match?.[1]) return match[1].trim();
  } catch {
    // not Linux: fall through
  }
  return cpus()[0]?.model ?? 'unknown';
}

export function loadAverage() {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}
