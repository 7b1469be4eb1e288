import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { loadRoutesFile, type LoadResult } from './load.js';
import type { Running } from './validate.js';

const WORKER = new URL('./load-worker.js', import.meta.url);

/**
 * Run from the TypeScript sources (as the unit and integration tests do), there is no built
 * worker to start: the file is loaded on this thread, as it is at start-up.
 */
const workerBuilt = existsSync(fileURLToPath(WORKER));

/**
 * Loads a routes file for a reload on a thread of its own. Reading, parsing and checking it is
 * the costly part of a reload, all synchronous (the YAML library, the schema): at 10,000 routes
 * it held the event loop, and every proxied request, for over a second. Only compiling the
 * checked result into a snapshot, a tenth of that, stays on the proxy's thread.
 */
export function loadInWorker(file: string, env: NodeJS.ProcessEnv, running: Running): Promise<LoadResult> {
  if (!workerBuilt) return loadRoutesFile(file, env, running);
  return new Promise((resolve) => {
    let answered = false;
    let worker: Worker;
    try {
      worker = new Worker(WORKER, { workerData: { file, env: { ...env }, running } });
    } catch (error) {
      // No thread to be had (ERR_WORKER_INIT_FAILED): a failed reload, as any other.
      resolve({ ok: false, file, hash: '', issues: [{ file, line: 1, col: 1, path: '', message: `cannot load the file: ${(error as Error).message}` }] });
      return;
    }
    // A reload still parsing must not hold up the process's exit.
    worker.unref();
    const fail = (message: string) => {
      if (answered) return;
      answered = true;
      resolve({ ok: false, file, hash: '', issues: [{ file, line: 1, col: 1, path: '', message }] });
    };
    worker.once('message', (result: LoadResult) => {
      answered = true;
      resolve(result);
      // Its work is done: a handle something preloaded into every thread keeps (NODE_OPTIONS=
      // --require of an agent, a timer) must not keep a thread and its heap per reload.
      void worker.terminate();
    });
    worker.once('error', (error) => fail(`cannot load the file: ${error.message}`));
    worker.once('exit', (code) => fail(`cannot load the file: its loader ended (exit code ${code}) without an answer`));
  });
}
