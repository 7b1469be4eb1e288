import { readFile, rename } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { removeAbandonedTemps, writeFileAtomically } from '../config/atomic-write.js';
import { symlinkHops } from '../config/paths.js';

/** The layout of the state file; a file of another version is reported and ignored. */
export const STATE_VERSION = 1;

/**
 * One route's or service's runtime decisions, as its owner wrote them. `fingerprint` names the
 * definition they were taken for: a record whose definition has changed since is stale.
 */
export type StateRecord = { readonly fingerprint: string; readonly [key: string]: unknown };

/** What survives a restart (SPEC §1.4): canary states by route, guard states by service. */
export interface PersistedState {
  readonly routes: Readonly<Record<string, StateRecord>>;
  readonly services: Readonly<Record<string, StateRecord>>;
}

export type LoadResult =
  | { readonly ok: true; readonly state: PersistedState; readonly missing: boolean }
  /** `state` is empty: a bad state file costs the decisions it held, never the start. */
  | { readonly ok: false; readonly state: PersistedState; readonly problem: string };

export type SaveResult = { readonly ok: true } | { readonly ok: false; readonly problem: string };

export function emptyState(): PersistedState {
  return { routes: {}, services: {} };
}

const RecordShape = z.looseObject({ fingerprint: z.string() });
const Document = z.strictObject({
  version: z.literal(STATE_VERSION),
  routes: z.record(z.string(), RecordShape),
  services: z.record(z.string(), RecordShape),
});

/**
 * Reads the state file. A missing file is an empty state (the first start); an unreadable,
 * corrupt or foreign one is reported and treated as empty, so it can never keep ficus down.
 * One that was read but not understood is first renamed aside: the next save would replace
 * the only record of the decisions it held (a rollback, say), or a newer ficus's file.
 */
export async function loadState(path: string): Promise<LoadResult> {
  // A link (to a persistent volume) is read, kept aside and saved where it points, and stays a link.
  const file = await linkTarget(path);
  // Saves cut short by a kill leave their temporary files; the file itself is whole either way.
  await removeAbandonedTemps(file);
  const failed = (why: string): LoadResult => ({ ok: false, state: emptyState(), problem: `state file ${path} ${why}; starting without it` });
  const misread = async (why: string): Promise<LoadResult> => {
    const aside = `${file}.ignored-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const kept = await rename(file, aside).then(
      () => `, and it is kept as ${aside}`,
      () => '',
    );
    return failed(`${why}${kept}`);
  };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: true, state: emptyState(), missing: true };
    // A file that is there but not ours to read (left by a run as another user) would be
    // replaced by the first save: kept aside like a file not understood.
    if (code === 'EACCES' || code === 'EPERM') return misread(`cannot be read (${code})`);
    return failed(`cannot be read (${code ?? (error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return misread(`is not valid JSON (${(error as Error).message})`);
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version !== STATE_VERSION) return misread(`has version ${version}, this ficus reads version ${STATE_VERSION}`);
  const parsed = Document.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return misread(`does not hold a ficus state (${issue ? `${issue.path.join('.') || 'document'}: ${issue.message}` : 'unexpected shape'})`);
  }
  return { ok: true, state: { routes: parsed.data.routes as PersistedState['routes'], services: parsed.data.services as PersistedState['services'] }, missing: false };
}

/**
 * Writes the state file atomically: a temporary file in the same directory, flushed to disk,
 * then renamed over the old one, so a reader (or a crash) sees the old state or the new one,
 * never half of either. Saves to one path are serialized; saves that queue up while a write is
 * running coalesce into one write of the latest state. Never rejects: a failure is returned.
 */
export function saveState(path: string, state: PersistedState): Promise<SaveResult> {
  let text: string;
  try {
    text = `${JSON.stringify({ version: STATE_VERSION, routes: state.routes, services: state.services }, null, 2)}\n`;
  } catch (error) {
    return Promise.resolve({ ok: false, problem: `cannot write state file ${path}: ${(error as Error).message}` });
  }
  const key = resolve(path);
  let writer = writers.get(key);
  if (writer === undefined) {
    writer = new Writer(path, () => writers.delete(key));
    writers.set(key, writer);
  }
  return writer.save(text);
}

const writers = new Map<string, Writer>();

class Writer {
  #next: string | undefined;
  #waiting: ((result: SaveResult) => void)[] = [];
  #running = false;

  constructor(
    private readonly path: string,
    private readonly onIdle: () => void,
  ) {}

  save(text: string): Promise<SaveResult> {
    return new Promise((done) => {
      this.#next = text;
      this.#waiting.push(done);
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    while (this.#next !== undefined) {
      const text = this.#next;
      const waiting = this.#waiting;
      this.#next = undefined;
      this.#waiting = [];
      const result = await writeAtomically(this.path, text);
      for (const done of waiting) done(result);
    }
    this.#running = false;
    this.onIdle();
  }
}

async function writeAtomically(path: string, text: string): Promise<SaveResult> {
  try {
    // A state file that is a symbolic link (to a persistent volume, say) is written where it
    // points; renaming over the link itself would leave the target stale and the link gone.
    await writeFileAtomically(await linkTarget(path), text);
    return { ok: true };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { ok: false, problem: `cannot write state file ${path} (${code ?? (error as Error).message}); runtime decisions will not survive a restart` };
  }
}

/** Where `path` finally points when it is a symbolic link (a chain of them, dangling or not); `path` otherwise. */
async function linkTarget(path: string): Promise<string> {
  return (await symlinkHops(path)).at(-1) ?? resolve(path);
}
