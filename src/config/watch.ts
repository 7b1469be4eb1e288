import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface WatchOptions {
  /** Quiet time after the last event before reloading: editors write in several steps. */
  debounceMs?: number;
  /** Fallback poll of the file's identity, for file systems that drop inotify events. */
  pollMs?: number;
}

/**
 * Watches the *directory* of the config file, not the file: an editor's rename-save replaces
 * the inode a file watch would hold, and Kubernetes swaps a ConfigMap by renaming the `..data`
 * symlink beside it. Any event in the directory (debounced) calls `onChange`; the caller skips
 * content it has already loaded by hash. A slow stat poll covers network file systems.
 */
export function watchConfig(file: string, onChange: () => void, options: WatchOptions = {}): () => void {
  const debounceMs = options.debounceMs ?? 100;
  const pollMs = options.pollMs ?? 2_000;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };

  let watcher: FSWatcher | undefined;
  try {
    // Every event counts: editors' temporary names vary (vim writes "4913" to probe), and the
    // caller compares content hashes anyway.
    watcher = watch(dirname(file), { persistent: false }, schedule);
    watcher.on('error', () => undefined);
  } catch {
    // The poll below still notices changes.
  }

  // Taken now, not at the first tick, so a change made right after start-up is not missed.
  let identity: string | undefined;
  const probe = () =>
    stat(file).then(
      (s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`,
      () => 'missing',
    );
  void probe().then((first) => (identity ??= first));
  const poll = setInterval(() => {
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
    watcher?.close();
  };
}
