import { connect } from 'node:net';

export interface RawExchange {
  /** Every byte the listener sent back, as latin1 so any byte survives. */
  response: string;
  /** The status codes of every response found in `response`, in order. */
  statuses: number[];
  /** Whether the listener closed the connection (rather than `until` or the deadline ending it). */
  closed: boolean;
  /** Whether we had to give up waiting (the deadline passed with the socket still open). */
  timedOut: boolean;
}

export interface RawOptions {
  /**
   * Stop waiting (and destroy the socket) once this holds for the bytes received so far, for an
   * answer on a connection that is meant to stay open. Without it, only the listener closing
   * the connection ends the exchange, which is what a rejection must do.
   */
  until?: (response: string) => boolean;
  /** How long to wait for `until` or for the listener to close the connection. */
  timeoutMs?: number;
}

/**
 * Writes `bytes` verbatim to 127.0.0.1:`port` and collects what comes back until the
 * listener closes the connection, `until` holds, or the deadline passes (then the socket is
 * destroyed and `timedOut` set). The client never half-closes: Node treats that as an abort.
 */
export function rawExchange(port: number, bytes: string | Buffer, options: RawOptions = {}): Promise<RawExchange> {
  const { until, timeoutMs = 2_000 } = options;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let timedOut = false;
    let satisfied = false;
    const socket = connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (until?.(Buffer.concat(chunks).toString('latin1'))) {
        satisfied = true;
        socket.destroy();
      }
    });
    // A reset after the listener answered still counts as a close: keep what arrived.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const response = Buffer.concat(chunks).toString('latin1');
      resolve({ response, statuses: statusesOf(response), closed: !timedOut && !satisfied, timedOut });
    });
    socket.once('connect', () => {
      socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes, (error) => {
        if (error) reject(error);
      });
    });
  });
}

/** Status codes of the status lines in a stream of HTTP/1.x responses. */
export function statusesOf(response: string): number[] {
  return [...response.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}
