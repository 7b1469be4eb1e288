import fs from 'node:fs';
import { pino } from 'pino';
import type { LineSink } from './line-batch.js';

/** What a synchronous write at exit waits on between two tries of a full pipe. */
const EXIT_PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** sonic-boom's pause before it writes again a chunk that met EAGAIN. */
const BUSY_WRITE_TIMEOUT_MS = 100;

/** How long the exit waits for a log reader that takes none of the last lines. */
const EXIT_FLUSH_MS = 1_000;

type Destination = ReturnType<typeof pino.destination>;

/**
 * stdout as the log's destination (pino's asynchronous sonic-boom), made to cost log lines and
 * never the proxy:
 * - A reader that does not keep up (a stalled shipper behind a pipe, a slow disk) must not
 *   grow the heap by a line per request: past `maxPending` characters, batches are dropped
 *   ('drop', to be counted) until it catches up, as nginx's buffered access_log bounds what it
 *   holds.
 * - A write that fails (a full disk: ENOSPC; a terminal gone: EIO) is retried with the next
 *   batch. pino handles EPIPE itself but re-emits every other error, which without a listener
 *   is an uncaught exception.
 * - At exit the rest is written synchronously, for as long as the reader takes some of it: a
 *   reader that takes nothing for EXIT_FLUSH_MS, or a write that fails, gives the rest up.
 *   sonic-boom's own flushSync would retry either every 100 ms for ever, so a drained proxy
 *   would never exit, its ports bound. A write still on libuv's thread pool then is left to
 *   it (how much of it lands cannot be known): the drain waits for the log to be written
 *   before it exits, so that only a reader stalled past that wait meets one.
 */
export function logDestination(maxPending: number, maxWrite: number): Destination & Required<Pick<LineSink, 'writeAtExit'>> {
  let giveUpAt = Number.POSITIVE_INFINITY;
  let leftAtExit = Number.POSITIVE_INFINITY;
  /** A chunk that met EAGAIN waits on sonic-boom's 100 ms timer, which never fires at exit. */
  let retrying = false;
  /** Set at exit by a write that failed other than EAGAIN: the rest is given up. */
  let broken = false;
  const destination = pino.destination({
    sync: false,
    minLength: 0,
    maxWrite,
    maxLength: maxPending,
    retryEAGAIN: (_error: Error, writing: number, queued: number) => {
      if (broken) return false;
      if (giveUpAt === Number.POSITIVE_INFINITY) {
        // sonic-boom sets its retry timer right after this returns, with the same delay: this
        // one runs just before it, so that a chunk on its way again is never written twice.
        setTimeout(() => (retrying = false), BUSY_WRITE_TIMEOUT_MS).unref();
        return (retrying = true);
      }
      if (writing + queued < leftAtExit) {
        leftAtExit = writing + queued;
        giveUpAt = Date.now() + EXIT_FLUSH_MS;
      }
      return Date.now() < giveUpAt;
    },
  });
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
  /** Written as the flush above writes, by the same rule: given up after EXIT_FLUSH_MS without progress. */
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
  // With minLength 0, sonic-boom calls a flush's callback at once: here it means "all written"
  // (the drain waits on it, so that nothing is on its way at exit).
  destination.flush = (cb?: (error?: Error) => void): void => {
    if (cb === undefined) return;
    const state = destination as unknown as { _writing: boolean; _len: number };
    const check = (): void => {
      if (!state._writing && state._len === 0) cb();
      else destination.once('drain', check);
    };
    check();
  };
  destination.on('error', () => {
    retrying = false;
  });
  destination.on('write', () => {
    retrying = false;
  });
  return Object.assign(destination, { writeAtExit });
}
