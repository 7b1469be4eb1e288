import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { processAlive } from './process-alive.js';

export interface AtomicWriteOptions {
  /** Permission bits of the new file (the umask does not narrow them). */
  mode?: number;
  /** Owner to keep, when running as root (other users cannot give files away). */
  owner?: { uid: number; gid: number };
}

/**
 * Replaces `path` with `text` so that a reader — a proxy watching routes.yaml, or a restart
 * reading the state file — sees the old content or the new, never half a file: a temporary
 * file in the same directory, flushed to disk, then renamed over the old one, and the
 * directory flushed so the rename itself survives a power cut. Throws; the temporary file is
 * removed on failure.
 */
export async function writeFileAtomically(path: string, text: string, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o644;
  const temp = join(dirname(path), `${tempPrefix(path)}${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.chmod(mode);
      if (options.owner !== undefined && process.getuid?.() === 0) await handle.chown(options.owner.uid, options.owner.gid).catch(() => undefined);
      // Without the flush, a crash after the rename can leave an empty file under the new name.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dirname(path));
}

function tempPrefix(path: string): string {
  return `.${basename(path)}.`;
}

/**
 * Removes the temporary files of `path` that a process killed mid-write left behind (those of
 * a process still running are its own business). Best effort; returns how many went.
 */
export async function removeAbandonedTemps(path: string): Promise<number> {
  const prefix = tempPrefix(path);
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    await rm(join(dirname(path), name), { force: true }).then(() => removed++, () => undefined);
  }
  return removed;
}

/** Makes the rename durable. Best effort: some platforms cannot open a directory. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // The file is complete either way; only its survival of a power cut is less certain.
  }
}
