import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { emptyState, loadState, saveState, STATE_VERSION, type PersistedState } from '../../../src/rollout/persist.js';
import { tempDir } from '../../helpers/proxy.js';

/**
 * The state file (SPEC §1.0 `stateFile`, §1.4): runtime decisions written atomically and read
 * back at start; a missing file is a first start, a bad one is reported and never fatal.
 */
const CANARY = { fingerprint: '["search",{"to":"search-v2"}]', state: 'ejected', weight: 0, step: 1, reason: 'error_rate', message: 'error rate 0.4 > 0.05', since: 1_700_000_000_000 };
const GUARD = { fingerprint: '["b","g"]', state: 'rolled-back', configured: 'green', active: 'blue', since: 1_700_000_000_000 };

async function stateFile(name = 'state.json') {
  const dir = await tempDir();
  return { dir, path: join(dir, name) };
}

describe('round trip', () => {
  test.each<[string, PersistedState]>([
    ['an empty state', emptyState()],
    ['a canary ejection', { routes: { search: CANARY }, services: {} }],
    ['a rollback', { routes: {}, services: { orders: GUARD } }],
    ['both, with text beyond ASCII', { routes: { search: { ...CANARY, message: 'p99 900ms — ✗' }, other: { fingerprint: 'x' } }, services: { orders: GUARD } }],
  ])('%s reads back as written', async (_name, state) => {
    const { path } = await stateFile();
    expect(await saveState(path, state)).toEqual({ ok: true });
    expect(await loadState(path)).toEqual({ ok: true, state, missing: false });
    const document = JSON.parse(await readFile(path, 'utf8')) as { version: number };
    expect(document.version).toBe(STATE_VERSION);
  });

  test('a missing file is an empty state: the first start', async () => {
    const { path } = await stateFile();
    expect(await loadState(path)).toEqual({ ok: true, state: emptyState(), missing: true });
  });

  test('a save replaces the previous state and leaves no temporary file', async () => {
    const { dir, path } = await stateFile();
    await saveState(path, { routes: { search: CANARY }, services: {} });
    await saveState(path, { routes: {}, services: { orders: GUARD } });
    expect((await loadState(path)).state).toEqual({ routes: {}, services: { orders: GUARD } });
    expect(await readdir(dir)).toEqual(['state.json']);
  });
});

describe('a bad state file is reported and ignored', () => {
  test.each([
    ['empty', '', 'is not valid JSON'],
    ['cut short', '{"version":1,"routes":{"search":{"fingerpr', 'is not valid JSON'],
    ['not an object', '[1,2]', 'does not hold a ficus state (document: '],
    ['null', 'null', 'does not hold a ficus state'],
    ['another version', '{"version":2,"routes":{},"services":{}}', 'has version 2, this ficus reads version 1'],
    ['no version', '{"routes":{},"services":{}}', 'does not hold a ficus state (version: '],
    ['a record without its fingerprint', '{"version":1,"routes":{"search":{"state":"ejected"}},"services":{}}', 'does not hold a ficus state (routes.search.fingerprint: '],
    ['services missing', '{"version":1,"routes":{}}', 'does not hold a ficus state (services: '],
  ])('%s', async (_name, text, says) => {
    const { path } = await stateFile();
    await writeFile(path, text);
    const loaded = await loadState(path);
    expect(loaded).toEqual({ ok: false, state: emptyState(), problem: expect.stringContaining(says) });
    if (!loaded.ok) expect(loaded.problem).toMatch(new RegExp(`^state file ${path} .*; starting without it$`));
  });

  test('unreadable (a directory where the file should be)', async () => {
    const { path } = await stateFile();
    await mkdir(path);
    expect(await loadState(path)).toEqual({ ok: false, state: emptyState(), problem: `state file ${path} cannot be read (EISDIR); starting without it` });
  });

  test('the next save replaces a corrupt file', async () => {
    const { path } = await stateFile();
    await writeFile(path, '{"version":1,');
    expect(await saveState(path, { routes: { search: CANARY }, services: {} })).toEqual({ ok: true });
    expect((await loadState(path)).state.routes).toEqual({ search: CANARY });
  });
});

describe('saving never throws', () => {
  test('a missing directory is reported, and a later save succeeds once it exists', async () => {
    const { dir } = await stateFile();
    const path = join(dir, 'gone', 'state.json');
    const saved = await saveState(path, emptyState());
    expect(saved).toEqual({ ok: false, problem: `cannot write state file ${path} (ENOENT); runtime decisions will not survive a restart` });
    await mkdir(join(dir, 'gone'));
    expect(await saveState(path, emptyState())).toEqual({ ok: true });
  });

  test('a directory in the way is reported and the temporary file removed', async () => {
    const { dir, path } = await stateFile();
    await mkdir(path);
    expect(await saveState(path, emptyState())).toMatchObject({ ok: false, problem: expect.stringContaining(`cannot write state file ${path} (`) });
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  test.each([
    ['a cycle', () => {
      const record: Record<string, unknown> = { fingerprint: 'x' };
      record.self = record;
      return record;
    }],
    ['a bigint', () => ({ fingerprint: 'x', weight: 10n })],
  ])('a record that cannot be serialized (%s) is reported and the file kept', async (_name, make) => {
    const { path } = await stateFile();
    await saveState(path, { routes: { search: CANARY }, services: {} });
    const saved = await saveState(path, { routes: { search: make() as PersistedState['routes'][string] }, services: {} });
    expect(saved).toMatchObject({ ok: false, problem: expect.stringContaining(`cannot write state file ${path}: `) });
    expect((await loadState(path)).state.routes).toEqual({ search: CANARY });
  });
});

describe('atomic and serialized', () => {
  /** A state of roughly `kb` KiB whose records all say `mark`, so a torn mix would show. */
  function bulky(mark: string, kb: number): PersistedState {
    const routes: Record<string, { fingerprint: string; mark: string; pad: string }> = {};
    for (let i = 0; i < kb; i++) routes[`route-${i}`] = { fingerprint: `f${i}`, mark, pad: 'x'.repeat(1000) };
    return { routes, services: {} };
  }

  test('a reader never sees a partial file while saves follow one another', async () => {
    const { path } = await stateFile();
    const states = ['a', 'b', 'c'].map((mark) => bulky(mark, 1024));
    await saveState(path, states[0] as PersistedState);
    let writing = true;
    let reads = 0;
    const reader = (async () => {
      while (writing) {
        const loaded = await loadState(path);
        expect(loaded.ok).toBe(true);
        const marks = new Set(Object.values(loaded.state.routes).map((r) => r.mark));
        expect(marks.size).toBe(1);
        expect(Object.keys(loaded.state.routes)).toHaveLength(1024);
        reads++;
      }
    })();
    try {
      for (let i = 0; i < 30; i++) expect(await saveState(path, states[i % 3] as PersistedState)).toEqual({ ok: true });
    } finally {
      writing = false;
    }
    await reader;
    expect(reads).toBeGreaterThan(0);
  });

  test('saves that queue up all succeed and the last one wins', async () => {
    const { dir, path } = await stateFile();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => saveState(path, { routes: { [`r${i}`]: { fingerprint: `${i}` } }, services: {} })));
    expect(results).toEqual(Array.from({ length: 20 }, () => ({ ok: true })));
    expect((await loadState(path)).state.routes).toEqual({ r19: { fingerprint: '19' } });
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  test('a slow large save never lands after a later small one', async () => {
    const { path } = await stateFile();
    const big = saveState(path, bulky('old', 4096));
    const small = saveState(path, { routes: { search: CANARY }, services: {} });
    expect(await Promise.all([big, small])).toEqual([{ ok: true }, { ok: true }]);
    expect((await loadState(path)).state.routes).toEqual({ search: CANARY });
  });

  test('the same file named two ways is still one queue', async () => {
    const { path } = await stateFile();
    const other = relative(process.cwd(), path);
    expect(other).not.toBe(path);
    const saves = [saveState(path, bulky('old', 2048)), saveState(other, { routes: {}, services: { orders: GUARD } })];
    await Promise.all(saves);
    expect((await loadState(path)).state).toEqual({ routes: {}, services: { orders: GUARD } });
  });
});
