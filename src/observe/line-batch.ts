/** What a batch is handed to: pino's asynchronous destination (sonic-boom). */
export interface LineSink {
  write(text: string): unknown;
  flush(cb?: (error?: Error) => void): void;
  flushSync(): void;
  /**
   * At exit, after `flushSync`: writes text synchronously behind what the destination held. An
   * asynchronous write started then would never end, and `flushSync` leaves one in flight alone.
   */
  writeAtExit?(text: string): void;
}

/**
 * About two hundred access lines: one write to the destination for all of them. The
 * destination writes on libuv's thread pool, and each hand-over there costs about as much CPU
 * as writing 60 KiB to a file: 16 KiB batches spent about 0.9 µs a request on it, 64 KiB ones
 * a quarter of that.
 */
export const BATCH_CHARS = 65_536;

/**
 * Log lines gathered in memory and handed to the destination `BATCH_CHARS` at a time, or when
 * flushed. sonic-boom measures its pending chunk (Buffer.byteLength) on every write, so one
 * write per line, or even per event-loop turn, costs microseconds per request under load; here
 * a line costs an array push. pino writes every line here, so lines keep their order. The
 * logger's flush (on a timer, after start-up, at drain) and the exit hook empty it.
 */
export class LineBatch {
  #lines: string[] = [];
  #chars = 0;

  constructor(private readonly sink: LineSink) {
    // Whichever exit hook runs first, the last lines must reach the destination.
    process.once('exit', () => {
      try {
        if (this.sink.writeAtExit === undefined) return this.flushSync();
        this.sink.flushSync();
        const text = this.#lines.join('');
        this.#lines = [];
        this.#chars = 0;
        if (text !== '') this.sink.writeAtExit(text);
      } catch {
        // The destination was already closed: nothing more can be written.
      }
    });
  }

  write(line: string): boolean {
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= BATCH_CHARS) this.#handOver();
    return true;
  }

  /** What `logger.flush()` calls: everything so far goes to the destination, then out. */
  flush(cb?: (error?: Error) => void): void {
    this.#handOver();
    this.sink.flush(cb);
  }

  flushSync(): void {
    this.#handOver();
    this.sink.flushSync();
  }

  #handOver(): void {
    if (this.#lines.length === 0) return;
    const text = this.#lines.join('');
    this.#lines = [];
    this.#chars = 0;
    this.sink.write(text);
  }
}
