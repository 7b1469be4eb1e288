import { open, readFile, rm, stat } from 'node:fs/promises';
import { processAlive } from './process-alive.js';

/** How long an edit waits for another one on the same file before it gives up. */
const WAIT_MS = 3_000;
const RETRY_MS = 25;
/** A breaker older than this was left by a process that died while breaking a lock (which takes milliseconds). */
const STALE_BREAKER_MS = 2_000;

/**
 * Serializes operator edits of one routes file across processes: `FILE.lock`, created
 * exclusively, names the editing process. Two edits started together (a script, two operators)
 * would otherwise both read the same text, and the second rename would silently undo the
 * first. A lock left by a process that is gone is taken over. Returns the release, or why the
 * lock could not be had.
 */
export async function lockForEdit(file: string): Promise<{ release: () => Promise<void> } | { busy: string }> {
  const path = `${file}.lock`;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      const handle = await open(path, 'wx', 0o644);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } catch (error) {
        // A lock left empty (a full disk) would read as "being written" to every later edit.
        await handle.close();
        await rm(path, { force: true });
        throw error;
      }
      await handle.close();
      return { release: () => releaseIfOurs(path) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await holderOf(path);
    // An empty lock is one being written (wait for it), unless it has been empty for longer
    // than writing takes (its process died between creating and writing it); one naming a
    // process that is gone is stale too (take it over).
    const stale = holder !== undefined ? !processAlive(holder) : (await ageOf(path)) > STALE_BREAKER_MS;
    if (stale && (await breakStale(path, holder))) continue;
    if (Date.now() >= deadline) {
      return { busy: `another edit of ${file} is in progress${holder !== undefined ? ` (process ${holder})` : ''}; run the command again, or remove ${path} if no edit is running` };
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

async function holderOf(path: string): Promise<number | undefined> {
  const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
  return Number.isInteger(pid) ? pid : undefined;
}

/**
 * Removes a lock whose holder is gone. Several waiting edits may find the same stale lock; if
 * each simply removed it, one could remove the fresh lock another had just taken in its place,
 * and both would edit at once. So breaking is itself exclusive (`FILE.lock.break`), and the lock
 * is removed only if it still names the dead holder. True when this process did the breaking.
 */
async function breakStale(path: string, holder: number | undefined): Promise<boolean> {
  const breaker = `${path}.break`;
  try {
    const handle = await open(breaker, 'wx', 0o644);
    await handle.close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if ((await ageOf(breaker)) > STALE_BREAKER_MS) await rm(breaker, { force: true });
    return false;
  }
  try {
    // Judged again under the breaker: an empty lock may by now be a fresh one, not yet written.
    const still = (await holderOf(path)) === holder && (holder !== undefined || (await ageOf(path)) > STALE_BREAKER_MS);
    if (still) await rm(path, { force: true });
  } finally {
    await rm(breaker, { force: true });
  }
  return true;
}

/** Milliseconds since the file was last written; 0 when it is gone. */
async function ageOf(path: string): Promise<number> {
  return stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
}

/** Never removes a lock another process holds (one that took over after this one was presumed gone). */
async function releaseIfOurs(path: string): Promise<void> {
  if ((await holderOf(path)) === process.pid) await rm(path, { force: true });
}
