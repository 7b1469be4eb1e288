import { pino, type Logger } from 'pino';
import { BATCH_CHARS, LineBatch } from './line-batch.js';
import { logDestination } from './log-destination.js';

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

/** Resolves once every line so far is written, or after `ms`, whichever comes first. */
export function flushedWithin(logger: Logger, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    try {
      logger.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      // A destination already closed has nothing left to write.
      clearTimeout(timer);
      resolve();
    }
  });
}

/** On every line: `name`, as pino's own option would write it; `service` names an upstream. */
export const LOG_BASE: Readonly<Record<string, string>> = { name: 'ficus' };

export function createLogger(level = process.env.FICUS_LOG_LEVEL || 'info'): Logger {
  // Set but empty is unset, as for FICUS_CONFIG and FICUS_ADMIN; a misspelt level is named.
  const levels = [...Object.keys(pino.levels.values), 'silent'];
  if (!levels.includes(level)) throw new Error(`FICUS_LOG_LEVEL is "${level}"; it must be one of ${levels.join(', ')}`);
  // Asynchronous, buffered writes: the access log must not cost a syscall per request. Lines
  // reach the destination about two hundred at a time (LineBatch), which writes each batch at once.
  const destination = logDestination(MAX_PENDING_LOG_CHARS, 4 * BATCH_CHARS);
  destination.on('drop', (text: string) => {
    logDrops.lines += countLines(text);
  });
  const batch = new LineBatch(destination);
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
