import { open, readFile, rm } from 'node:fs/promises';

/** How long an edit waits for another one on the same file before it gives up. */
const WAIT_MS = 3_000;
const RETRY_MS = 25;

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
      } finally {
        await handle.close();
      }
      return { release: () => rm(path, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    // An empty lock is one being written (wait for it); one naming a process that is gone is
    // stale (take it over).
    if (Number.isInteger(holder) && !alive(holder)) {
      await rm(path, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      return { busy: `another edit of ${file} is in progress${Number.isInteger(holder) ? ` (process ${holder})` : ''}; run the command again, or remove ${path} if no edit is running` };
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, and belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
