// Starting, pinning, waiting for and stopping the processes of one bench run.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { openSync, closeSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { childPids } from './proc.js';

const running = new Set();

/**
 * Spawns `command args` pinned to `cpu` with taskset (which execs, so the PID is the command's).
 * stdout/stderr go to files, or are collected when `capture` is set.
 */
export function startPinned(cpu, command, args, { stdout, stderr, capture = false, env } = {}) {
  const out = stdout ? openSync(stdout, 'w') : capture ? 'pipe' : 'ignore';
  const err = stderr ? openSync(stderr, 'w') : capture ? 'pipe' : 'ignore';
  const argv = cpu === undefined ? [command, ...args] : ['taskset', '-c', String(cpu), command, ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', out, err], env: env ?? process.env });
  if (typeof out === 'number') closeSync(out);
  if (typeof err === 'number') closeSync(err);
  let text = '';
  let errText = '';
  child.stdout?.on('data', (chunk) => (text += chunk));
  child.stderr?.on('data', (chunk) => (errText += chunk));
  const exited = once(child, 'exit').then(([code, signal]) => {
    running.delete(child);
    return { code, signal, stdout: text, stderr: errText };
  });
  running.add(child);
  return { pid: child.pid, child, exited };
}

/** Runs a pinned command to completion and returns its captured output; throws on failure or timeout. */
export async function runPinned(cpu, command, args, { timeoutMs, ...options } = {}) {
  const handle = startPinned(cpu, command, args, { ...options, capture: true });
  const timer = timeoutMs ? setTimeout(() => handle.child.kill('SIGKILL'), timeoutMs) : undefined;
  const result = await handle.exited;
  clearTimeout(timer);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code ?? result.signal}: ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout;
}

/** SIGTERM, then SIGKILL when the process has not exited within `graceMs`. */
export async function stop(handle, signal = 'SIGTERM', graceMs = 10_000) {
  if (handle.child.exitCode !== null || handle.child.signalCode !== null) return handle.exited;
  handle.child.kill(signal);
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), graceMs);
  const result = await handle.exited;
  clearTimeout(timer);
  return result;
}

/**
 * Kills every child still running (on error or interrupt), and their own children: an nginx
 * worker outlives a master killed with SIGKILL. The child is stopped first, so that it cannot
 * start a new worker for one killed. Only processes this run started.
 */
export function killAll() {
  for (const child of running) {
    child.kill('SIGSTOP');
    for (const pid of descendants(child.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    child.kill('SIGKILL');
  }
}

function descendants(pid) {
  return childPids(pid).flatMap((child) => [...descendants(child), child]);
}

export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Polls `url` until it answers below 500, or throws after `timeoutMs`. */
export async function waitForHttp(url, timeoutMs = 15_000, handle) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (handle && handle.child.exitCode !== null) {
      const result = await handle.exited;
      throw new Error(`process for ${url} exited early (${result.code}): ${result.stderr.trim()}`);
    }
    const status = await new Promise((resolve) => {
      const req = get(url, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.setTimeout(1_000, () => req.destroy());
    });
    if (status > 0 && status < 500) return;
    if (Date.now() > deadline) throw new Error(`${url} did not come up within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export function getText(url) {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve(text));
      res.on('error', reject);
    }).on('error', reject);
  });
}
