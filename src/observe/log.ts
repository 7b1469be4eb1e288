import { pino, type Logger } from 'pino';

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
  upstreamError: 'upstream.error',
  draining: 'draining',
  stopped: 'stopped',
  internalError: 'internal_error',
} as const;

export function createLogger(level = process.env.FICUS_LOG_LEVEL ?? 'info'): Logger {
  // Asynchronous, buffered writes: the access log must not cost a syscall per request.
  return pino({ level, base: { service: 'ficus' } }, pino.destination({ sync: false, minLength: 4096 }));
}
