import type { Pool } from 'undici';

interface Holds {
  count: number;
  released: (() => void)[];
}

const holds = new WeakMap<Pool, Holds>();

/**
 * Keeps `pool` open for a request not yet handed to it: a shadow copy waits for the client's
 * whole body before it is sent, and a reload must not close the pool under it meanwhile
 * (requests already in a pool are waited for by undici's own graceful close). Returns the
 * release, which may be called more than once.
 */
export function holdPool(pool: Pool): () => void {
  let entry = holds.get(pool);
  if (entry === undefined) holds.set(pool, (entry = { count: 0, released: [] }));
  entry.count++;
  let done = false;
  const held = entry;
  return () => {
    if (done) return;
    done = true;
    if (--held.count > 0) return;
    for (const resolve of held.released.splice(0)) resolve();
  };
}

/** The longest a retired pool waits for its holds: a copy whose request never ends must not keep it for ever. */
export const MAX_HOLD_MS = 60_000;

/** Closes `pool` gracefully once nothing holds it, or `maxWaitMs` from now. */
export async function closeWhenReleased(pool: Pool, maxWaitMs = MAX_HOLD_MS): Promise<void> {
  const entry = holds.get(pool);
  if (entry !== undefined && entry.count > 0) {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      entry.released.push(resolve);
      timer = setTimeout(resolve, maxWaitMs);
      timer.unref();
    });
    clearTimeout(timer);
  }
  await pool.close();
}
