import { parentPort, workerData } from 'node:worker_threads';
import { loadRoutesFile } from './load.js';
import type { Running } from './validate.js';

/** The worker side of `loadInWorker`: one file loaded, its result posted back, then the thread ends. */
const { file, env, running } = workerData as { file: string; env: NodeJS.ProcessEnv; running: Running | undefined };
parentPort?.postMessage(await loadRoutesFile(file, env, running));
