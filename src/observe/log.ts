import fs from 'node:fs';
import { pino, type Logger } from 'pino';
import { BATCH_CHARS, LineBatch } from './line-batch.js';

export type { Logger };

/** Event names, so that log lines can be searched for and alerted on by a stable `event`. */
export const EVENT = {
  access: 'access',
  started: 'started',
  reloaded: 'config.reloaded',
  reloadFailed: 'config.reload_failed',
  reloadUnchanged: 'config.unchanged',
  restartNeeded: 'config.restart_needed',
  endpointEjected: 'endpoint.ejected',
  endpointReturned: 'endpoint.returned',
  endpointUnhealthy: 'endpoint.unhealthy',
  endpointHealthy: 'endpoint.healthy',
  panicEntered: 'service.panic',
  panicEnded: 'service.panic_ended',
  upstreamError: 'upstream.error',
  shadowMismatch: 'shadow.mismatch',
  draining: 'draining',
  drainExpired: 'drain.expired',
  stopped: 'stopped',
  internalError: 'internal_error',
  auditWriteFailed: 'audit.write_failed',
  cutover: 'service.cutover',
  canaryEjected: 'canary.ejected',
  canaryReadmitted: 'canary.readmitted',
  canaryStep: 'canary.step',
  canaryPromoted: 'canary.promoted',
  guardWatching: 'service.guarding',
  guardPassed: 'service.guard_passed',
  rolledBack: 'service.rolled_back',
  stateIgnored: 'state.ignored',
  stateWriteFailed: 'state.write_failed',
} as const;

/** Log text waiting for a destination that does not keep up; beyond it, lines are dropped. */
export const MAX_PENDING_LOG_CHARS = 16 * 1024 * 1024;

/** Lines dropped since start because the log's destination did not keep up. */
export const logDrops = { lines: 0 };

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** Longest time a log line waits in the buffer when traffic is too light to fill it. */
const FLUSH_INTERVAL_MS = 500;

/** What a synchronous write at exit waits on between two tries of a full pipe. */
const EXIT_PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** How long the exit waits for a log reader that does not take the last lines. */
const EXIT_FLUSH_MS = 1_000;

/** A logger's own line output, and the JSON of its bindings as pino prints them after `time`. */
export interface LineSink {
  write(line: string): unknown;
  /** `,"name":"ficus"`: what pino writes for the logger's `base`. */
  readonly bindings: string;
}

const lineSinks = new WeakMap<Logger, LineSink>();

/**
 * Makes `logger` (built with `base`) say where its lines go, so that the access log can write
 * its lines there itself (observe/access-log.ts). The sink must be the logger's own stream.
 */
export function withLineSink(logger: Logger, base: Readonly<Record<string, string>>, write: (line: string) => unknown): Logger {
  const bindings = Object.entries(base).map(([key, value]) => `,${JSON.stringify(key)}:${JSON.stringify(value)}`).join('');
  lineSinks.set(logger, { write, bindings });
  return logger;
}

export function lineSinkOf(logger: Logger): LineSink | undefined {
  return lineSinks.get(logger);
}

/** On every line: `name`, as pino's own option would write it; `service` names an upstream. */
export const LOG_BASE: Readonly<Record<string, string>> = { name: 'ficus' };

export function createLogger(level = process.env.FICUS_LOG_LEVEL || 'info'): Logger {
  // Set but empty is unset, as for FICUS_CONFIG and FICUS_ADMIN; a misspelt level is named.
  const levels = [...Object.keys(pino.levels.values), 'silent'];
  if (!levels.includes(level)) throw new Error(`FICUS_LOG_LEVEL is "${level}"; it must be one of ${levels.join(', ')}`);
  // Asynchronous, buffered writes: the access log must not cost a syscall per request. Lines
  // reach the destination about two hundred at a time (LineBatch), which writes each batch at once
  // (minLength 0) and flushes synchronously on exit.
  // A destination that stops taking lines (a stalled log reader behind a pipe, a slow disk) must
  // not grow the heap by a line per request: past MAX_PENDING_LOG_CHARS, batches are dropped
  // (and counted) until it catches up, as nginx's buffered access_log bounds what it holds.
  // At exit the rest is written synchronously; a reader that takes nothing for EXIT_FLUSH_MS
  // is given up (sonic-boom would otherwise retry EAGAIN every 100 ms for ever, and a drained
  // proxy would never exit). A reader that is slow but reads keeps getting the lines.
  let giveUpAt = Number.POSITIVE_INFINITY;
  let leftAtExit = Number.POSITIVE_INFINITY;
  /** A chunk that met EAGAIN waits on sonic-boom's 100 ms timer, which never fires at exit. */
  let retrying = false;
  /** Set at exit by a write that failed other than EAGAIN: the rest is given up. */
  let broken = false;
  const destination = pino.destination({
    sync: false,
    minLength: 0,
    maxWrite: 4 * BATCH_CHARS,
    maxLength: MAX_PENDING_LOG_CHARS,
    retryEAGAIN: (_error: Error, writing: number, queued: number) => {
      if (broken) return false;
      if (giveUpAt === Number.POSITIVE_INFINITY) return (retrying = true);
      if (writing + queued < leftAtExit) {
        leftAtExit = writing + queued;
        giveUpAt = Date.now() + EXIT_FLUSH_MS;
      }
      return Date.now() < giveUpAt;
    },
  });
  destination.on('drop', (text: string) => {
    logDrops.lines += countLines(text);
  });
  // A destination that fails (stdout on a full disk: ENOSPC; a terminal that went away: EIO)
  // must cost log lines, never the proxy. pino handles EPIPE itself but re-emits every other
  // error, which without a listener is an uncaught exception; and sonic-boom's flushSync, which
  // the exit hooks call, retries such a write every 100 ms for ever, so the process would hang
  // with its ports bound instead of exiting. Failing writes are retried with the next batch
  // (lines past MAX_PENDING_LOG_CHARS are dropped and counted); at exit they are given up.
  const flushSync = destination.flushSync.bind(destination);
  destination.flushSync = () => {
    if (broken) return;
    if (giveUpAt === Number.POSITIVE_INFINITY) giveUpAt = Date.now() + EXIT_FLUSH_MS;
    // The chunk waiting on the retry timer is written first, by this flush, or it would be lost.
    if (retrying) (destination as unknown as { _writing: boolean })._writing = false;
    retrying = false;
    // sonic-boom's flushSync sleeps and retries any error but EAGAIN for ever: a write that
    // fails otherwise (ENOSPC, EIO, EFBIG), even if an earlier one did not, gives the rest up.
    const writeSync = fs.writeSync;
    fs.writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
      try {
        return writeSync(...args);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EBUSY') broken = true;
        throw broken ? Object.assign(new Error('log destination failing'), { code: 'EAGAIN' }) : error;
      }
    }) as typeof fs.writeSync;
    try {
      flushSync();
    } catch {
      broken = true;
    } finally {
      fs.writeSync = writeSync;
    }
  };
  /** Written as sonic-boom's flushSync writes, by the same give-up rule: none for EXIT_FLUSH_MS after the last progress. */
  const writeAtExit = (text: string): void => {
    let rest = Buffer.from(text);
    let progressAt = Date.now();
    while (rest.length > 0 && !broken) {
      try {
        rest = rest.subarray(fs.writeSync((destination as unknown as { fd: number }).fd, rest));
        progressAt = Date.now();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if ((code !== 'EAGAIN' && code !== 'EBUSY') || Date.now() - progressAt > EXIT_FLUSH_MS) broken = true;
        else Atomics.wait(EXIT_PAUSE, 0, 0, 10);
      }
    }
  };
  const sink = Object.assign(destination, { writeAtExit });
  destination.on('error', () => {
    retrying = false;
  });
  destination.on('write', () => {
    retrying = false;
  });
  const batch = new LineBatch(sink);
  const logger = pino({ level, base: LOG_BASE }, batch);
  // A quiet proxy would otherwise sit on a reload error or an ejection until a batch fills.
  setInterval(() => {
    try {
      batch.flush();
    } catch {
      // Destroyed at exit: nothing left to flush.
    }
  }, FLUSH_INTERVAL_MS).unref();
  return withLineSink(logger, LOG_BASE, (line) => batch.write(line));
}
