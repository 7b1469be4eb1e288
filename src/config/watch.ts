import { watch, type FSWatcher } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { symlinkHops } from './paths.js';

export interface WatchOptions {
  /** Quiet time after the last event before reloading: editors write in several steps. */
  debounceMs?: number;
  /** Fallback poll of the file's identity, for file systems that drop inotify events. */
  pollMs?: number;
  /** However busy the directory, a change is looked at within this time of its first event. */
  maxWaitMs?: number;
}

/**
 * Watches the *directory* of the config file, not the file: an editor's rename-save replaces
 * the inode a file watch would hold, and Kubernetes swaps a ConfigMap by renaming the `..data`
 * symlink beside it. Events that can concern the file (its name, the name of its symlink
 * target, Kubernetes' `..` names, an unnamed event, the directory itself) are debounced into
 * one `onChange`; other files in the directory (a log written many times a second) are
 * ignored, and a burst is cut off after `maxWaitMs`, so a busy directory cannot starve a
 * reload. The caller skips content it has already loaded by hash. A slow stat poll covers
 * network file systems, and re-arms the watch when the directory was replaced.
 */
export function watchConfig(file: string, onChange: () => void, options: WatchOptions = {}): () => void {
  const debounceMs = options.debounceMs ?? 100;
  const pollMs = options.pollMs ?? 2_000;
  const maxWaitMs = Math.max(debounceMs, options.maxWaitMs ?? 1_000);
  let timer: NodeJS.Timeout | undefined;
  let firstEventAt: number | undefined;
  let closed = false;

  const fire = () => {
    timer = undefined;
    firstEventAt = undefined;
    // A change may have re-pointed a symlink: what is watched follows it now, not at the next poll.
    void follow();
    onChange();
  };
  const schedule = () => {
    if (closed) return;
    const now = Date.now();
    firstEventAt ??= now;
    clearTimeout(timer);
    timer = setTimeout(fire, Math.max(0, Math.min(debounceMs, firstEventAt + maxWaitMs - now)));
  };

  // Names whose events can change what `file` reads; the symlink hops' are re-read on each poll and change.
  const names = new Set([basename(file), basename(dirname(file))]);
  /** The names of every symlink the file is reached through, and of its target. */
  let hopNames = new Set<string>();
  const relevant = (name: string | Buffer | null) => {
    if (name === null) return true;
    const text = String(name);
    return names.has(text) || hopNames.has(text) || text.startsWith('..');
  };

  const watchers = new Map<string, FSWatcher>();
  const arm = (dir: string) => {
    if (closed) return;
    watchers.get(dir)?.close();
    try {
      const watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (relevant(name)) schedule();
      });
      watcher.on('error', () => undefined);
      watchers.set(dir, watcher);
    } catch {
      // The poll below still notices changes.
    }
  };
  // The directory's identity too: one deleted and recreated leaves an inotify watch deaf. ext4
  // and tmpfs hand a recreated directory its old inode number back: its birth time tells them apart.
  const dirIdentity = (dir: string) => stat(dir).then((s) => `${s.dev}:${s.ino}:${s.birthtimeMs}`, () => 'missing');
  const dirs = new Map<string, string>();
  const track = async (dir: string) => {
    const identity = await dirIdentity(dir);
    const before = dirs.get(dir);
    dirs.set(dir, identity);
    if (before !== identity && identity !== 'missing' && (before !== undefined || !watchers.has(dir))) arm(dir);
  };
  // A config that is a symlink (or a chain of them) into other directories is watched there too.
  const follow = async () => {
    const hops = await symlinkHops(file);
    const real = await realpath(file).catch(() => undefined);
    if (real !== undefined) hops.push(real);
    hopNames = new Set(hops.map((hop) => basename(hop)));
    const elsewhere = new Set(hops.map((hop) => dirname(hop)));
    elsewhere.delete(dirname(file));
    await track(dirname(file));
    for (const [dir, watcher] of watchers) {
      if (dir !== dirname(file) && !elsewhere.has(dir)) {
        watcher.close();
        watchers.delete(dir);
        dirs.delete(dir);
      }
    }
    for (const dir of elsewhere) await track(dir);
  };
  // Armed at once, so that no event between start-up and the first stat is missed.
  arm(dirname(file));
  void follow();

  // Taken now, not at the first tick, so a change made right after start-up is not missed.
  let identity: string | undefined;
  const probe = () =>
    stat(file).then(
      (s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`,
      () => 'missing',
    );
  void probe().then((first) => (identity ??= first));
  const poll = setInterval(() => {
    void follow();
    void probe().then((next) => {
      if (identity !== undefined && next !== identity) schedule();
      identity = next;
    });
  }, pollMs);
  poll.unref();

  return () => {
    closed = true;
    clearTimeout(timer);
    clearInterval(poll);
    for (const watcher of watchers.values()) watcher.close();
  };
}
