import { buildConnector, Pool } from 'undici';
import type { Timeouts } from '../config/snapshot.js';
import { closeWhenReleased } from './pool-holds.js';
import { watchForReset } from './reset-watch.js';

/**
 * One keep-alive undici Pool per endpoint origin and connection settings, shared by every
 * snapshot that names it, so a reload keeps warm connections. Pools nobody names any more are
 * closed gracefully: requests still running on them finish first.
 */
export class PoolRegistry {
  readonly #pools = new Map<string, Pool>();

  /**
   * `scope` keeps a group's pools to itself: a blue/green colour's pools are retired at cutover,
   * which must never close connections another service is using to the same origin.
   */
  static key(origin: string, timeouts: Timeouts, scope = ''): string {
    return `${origin}|${timeouts.connectMs}|${timeouts.idleMs}${scope && `|${scope}`}`;
  }

  acquire(origin: string, timeouts: Timeouts, scope = ''): Pool {
    const key = PoolRegistry.key(origin, timeouts, scope);
    let pool = this.#pools.get(key);
    if (!pool) {
      const connector = buildConnector({ timeout: timeouts.connectMs });
      pool = new Pool(origin, {
        // undici's own connector, each new connection's resets heard before undici hears them.
        // TLS: the SNI and the name the certificate is checked against are the URL's host (none
        // for an IP address, which is checked against the certificate's IP entries), never the
        // Host a client sent (undici's default): see `Endpoint.servername`.
        connect: (options, callback) =>
          connector({ ...options, servername: undefined }, (...args) => {
            if (args[0]) markConnectError(args[0]);
            if (args[1]) watchForReset(args[1]);
            callback(...args);
          }),
        keepAliveTimeout: Math.min(4_000, timeouts.idleMs),
        keepAliveMaxTimeout: timeouts.idleMs,
        pipelining: 1,
      });
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Forgets the pool under `key` without closing it, so the next `acquire` opens a fresh one;
   * the caller closes the old pool when its requests are done.
   */
  detach(key: string): Pool | undefined {
    const pool = this.#pools.get(key);
    this.#pools.delete(key);
    return pool;
  }

  /** Closes (gracefully) every pool whose key is not in `keep`. */
  async retainOnly(keep: ReadonlySet<string>): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [key, pool] of this.#pools) {
      if (keep.has(key)) continue;
      this.#pools.delete(key);
      closing.push(closeWhenReleased(pool).catch(() => undefined));
    }
    await Promise.all(closing);
  }

  async closeAll(): Promise<void> {
    await this.retainOnly(new Set());
  }

  async destroyAll(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy().catch(() => undefined)));
  }
}

/** An error of the connection's making (TCP connect, TLS handshake, certificate): nothing was sent. */
export const CONNECT_ERROR = Symbol('ficus.connectError');
function markConnectError(error: Error): void {
  (error as Error & { [CONNECT_ERROR]?: true })[CONNECT_ERROR] = true;
}
