import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, onTestFinished, test, vi } from 'vitest';
import { watchConfig } from '../../../src/config/watch.js';
import { tempDir } from '../../helpers/proxy.js';

/** Starts a watcher on `file` and counts its calls; stopped when the test ends. */
function watching(file: string, options: { debounceMs?: number; pollMs?: number } = {}) {
  const calls = { count: 0 };
  const stop = watchConfig(file, () => calls.count++, { debounceMs: 20, pollMs: 60_000, ...options });
  onTestFinished(stop);
  return calls;
}

const called = (calls: { count: number }, n = 1) => vi.waitFor(() => expect(calls.count).toBeGreaterThanOrEqual(n), { timeout: 3_000, interval: 10 });

// Each change is made twice: a watch on the file itself would see the first replacement (its
// inode goes away) and then go deaf, which is the bug the directory watch exists to avoid.
test.each([
  {
    name: "an editor's rename-save (temp file renamed over the config)",
    change: async (dir: string, file: string, n: number) => {
      await writeFile(join(dir, '.routes.yaml.swp'), `version: ${n}\n`);
      await rename(join(dir, '.routes.yaml.swp'), file);
    },
  },
  { name: 'an in-place write', change: (_dir: string, file: string, n: number) => writeFile(file, `version: ${n}\n`) },
])('$name triggers a reload, every time', async ({ change }) => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, 'version: 1\n');
  const calls = watching(file);
  await change(dir, file, 2);
  await called(calls);
  await change(dir, file, 3);
  await called(calls, 2);
});

test('a Kubernetes ConfigMap swap (..data symlink renamed over) triggers a reload, every time', async () => {
  const dir = await tempDir();
  // The kubelet's layout: routes.yaml → ..data/routes.yaml, ..data → ..<timestamp>/
  const swap = async (stamp: string, text: string, old?: string) => {
    await mkdir(join(dir, stamp));
    await writeFile(join(dir, stamp, 'routes.yaml'), text);
    await symlink(stamp, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    if (old) await rm(join(dir, old), { recursive: true });
  };
  await swap('..2024_01_01_00_00_00.1', 'version: 1\n');
  await symlink('..data/routes.yaml', join(dir, 'routes.yaml'));
  const calls = watching(join(dir, 'routes.yaml'));

  await swap('..2024_01_01_00_05_00.2', 'version: 2\n', '..2024_01_01_00_00_00.1');
  await called(calls);
  await swap('..2024_01_01_00_10_00.3', 'version: 3\n', '..2024_01_01_00_05_00.2');
  await called(calls, 2);
});

test('the stat poll notices a change the directory watch cannot see (target of a symlink elsewhere)', async () => {
  const [linkDir, realDir] = [await tempDir(), await tempDir()];
  await writeFile(join(realDir, 'routes.yaml'), 'version: 1\n');
  await symlink(join(realDir, 'routes.yaml'), join(linkDir, 'routes.yaml'));
  const calls = watching(join(linkDir, 'routes.yaml'), { pollMs: 30 });
  await writeFile(join(realDir, 'routes.yaml'), 'version: 22\n');
  await called(calls);
});

test('a burst of writes is debounced into one call', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, 'version: 1\n');
  const calls = watching(file, { debounceMs: 150 });
  for (let i = 0; i < 10; i++) await writeFile(file, `version: ${i}\n`);
  await called(calls);
  // A marker change after the burst has settled: exactly one more call means the burst made one.
  await writeFile(file, 'version: marker\n');
  await called(calls, 2);
  expect(calls.count).toBe(2);
});

test('a stopped watcher calls nothing any more', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, 'version: 1\n');
  const calls = { count: 0 };
  const stop = watchConfig(file, () => calls.count++, { debounceMs: 1, pollMs: 10 });
  stop();
  // A second, live watcher proves the change was seen and its debounce elapsed.
  const live = watching(file, { debounceMs: 30 });
  await writeFile(file, 'version: 2\n');
  await called(live);
  expect(calls.count).toBe(0);
});

test('writes to the file itself that never pause for the debounce still reach onChange within maxWaitMs', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, 'version: 0\n');
  const calls = { count: 0 };
  const stop = watchConfig(file, () => calls.count++, { debounceMs: 200, maxWaitMs: 300, pollMs: 60_000 });
  onTestFinished(stop);
  // A write every 30 ms: never 200 ms of quiet, so only the cap can let a reload through.
  let n = 0;
  const writer = setInterval(() => void writeFile(file, `version: ${++n}\n`), 30);
  onTestFinished(() => clearInterval(writer));
  await called(calls);
  expect(n).toBeGreaterThan(0);
  clearInterval(writer);
});

test('a symlink in the middle of the chain re-pointed (routes.yaml -> current.yaml -> v1.yaml) is seen by the directory watch', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'v1.yaml'), 'version: 1\n');
  await writeFile(join(dir, 'v2.yaml'), 'version: 2\n');
  await symlink('v1.yaml', join(dir, 'current.yaml'));
  await symlink('current.yaml', join(dir, 'routes.yaml'));
  const calls = watching(join(dir, 'routes.yaml'));
  const repoint = async (link: string, target: string) => {
    await symlink(target, join(dir, `${link}.tmp`));
    await rename(join(dir, `${link}.tmp`), join(dir, link));
  };
  // The config's own name is always heard; each reload follows the chain again, so after two
  // of them the hops are known whatever the timing of the first look at start.
  await repoint('routes.yaml', 'current.yaml');
  await called(calls, 1);
  await repoint('routes.yaml', 'current.yaml');
  await called(calls, 2);
  await repoint('current.yaml', 'v2.yaml');
  await called(calls, 3);
});

test('writes to another file in the directory (a log beside routes.yaml) call nothing', async () => {
  const dir = await tempDir();
  const file = join(dir, 'routes.yaml');
  await writeFile(file, 'version: 1\n');
  const calls = watching(file, { debounceMs: 20 });
  // A witness watching the log itself, with a longer debounce: once it is called, the log's
  // events were delivered and the debounce of the watcher under test has long elapsed.
  const witness = watching(join(dir, 'app.log'), { debounceMs: 150 });
  for (let i = 0; i < 3; i++) await writeFile(join(dir, 'app.log'), `line ${i}\n`);
  await called(witness);
  expect(calls.count).toBe(0);
});

test("a ConfigMap's ..data rename is heard by itself, before the kubelet removes the old timestamped directory", async () => {
  const dir = await tempDir();
  const swap = async (stamp: string, text: string) => {
    await mkdir(join(dir, stamp));
    await writeFile(join(dir, stamp, 'routes.yaml'), text);
    await symlink(stamp, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  };
  await swap('..2024_01_01_00_00_00.1', 'version: 1\n');
  await symlink('..data/routes.yaml', join(dir, 'routes.yaml'));
  const calls = watching(join(dir, 'routes.yaml'));
  await swap('..2024_01_01_00_05_00.2', 'version: 2\n');
  await called(calls);
});

test('a symlink re-pointed into another directory is followed at once: edits there are heard without waiting for the poll', async () => {
  const [dir, first, second] = [await tempDir(), await tempDir(), await tempDir()];
  await writeFile(join(first, 'routes.yaml'), 'version: 1\n');
  await writeFile(join(second, 'routes.yaml'), 'version: 1\n');
  await symlink(join(first, 'routes.yaml'), join(dir, 'routes.yaml'));
  const calls = watching(join(dir, 'routes.yaml'));
  // Nothing tells when a directory's watch is armed: an edit is repeated until it is heard.
  let n = 1;
  const editUntil = (target: string, count: number) =>
    vi.waitFor(
      async () => {
        await writeFile(join(target, 'routes.yaml'), `version: ${++n}\n`);
        expect(calls.count).toBeGreaterThanOrEqual(count);
      },
      { timeout: 3_000, interval: 50 },
    );
  await editUntil(first, 1);
  const before = calls.count;
  await symlink(join(second, 'routes.yaml'), join(dir, 'routes.yaml.tmp'));
  await rename(join(dir, 'routes.yaml.tmp'), join(dir, 'routes.yaml'));
  await called(calls, before + 1);
  // The poll is a minute away: only the look at the chain made by that reload can have armed `second`.
  await editUntil(second, calls.count + 1);
});

test('a config directory deleted and made again is watched again: later edits are heard without the poll', async () => {
  const parent = await tempDir();
  const dir = join(parent, 'conf');
  await mkdir(dir);
  const file = join(dir, 'routes.yaml');
  await writeFile(file, 'version: 1\n');
  const calls = watching(file);
  await writeFile(file, 'version: 2\n');
  await called(calls);
  await rm(dir, { recursive: true });
  await mkdir(dir);
  await writeFile(file, 'version: 3\n');
  await called(calls, 2);
  const before = calls.count;
  // The new directory's watch is armed by the look that follows the call: nothing to await, so
  // the edit is repeated until it is heard (the poll is a minute away).
  let n = 3;
  await vi.waitFor(
    async () => {
      await writeFile(file, `version: ${++n}\n`);
      expect(calls.count).toBeGreaterThan(before);
    },
    { timeout: 3_000, interval: 50 },
  );
});

test('a config directory swapped by renames (conf → conf.old, conf.new → conf) is heard, and the new one watched', async () => {
  const parent = await tempDir();
  const dir = join(parent, 'conf');
  await mkdir(dir);
  await mkdir(join(parent, 'conf.new'));
  const file = join(dir, 'routes.yaml');
  await writeFile(file, 'version: 1\n');
  await writeFile(join(parent, 'conf.new', 'routes.yaml'), 'version: 2\n');
  const calls = watching(file);
  await writeFile(file, 'version: 1\n');
  await called(calls);
  const before = calls.count;
  // No file in the watched directory changes: only the directory's own event tells.
  await rename(dir, join(parent, 'conf.old'));
  await rename(join(parent, 'conf.new'), dir);
  await called(calls, before + 1);
  let n = 2;
  await vi.waitFor(
    async () => {
      await writeFile(file, `version: ${++n}\n`);
      expect(calls.count).toBeGreaterThan(before + 1);
    },
    { timeout: 3_000, interval: 50 },
  );
});

test('the directory a symlink no longer leads to is no longer watched: writes there call nothing', async () => {
  const [dir, first, second] = [await tempDir(), await tempDir(), await tempDir()];
  await writeFile(join(first, 'routes.yaml'), 'version: 1\n');
  await writeFile(join(second, 'routes.yaml'), 'version: 1\n');
  await symlink(join(first, 'routes.yaml'), join(dir, 'routes.yaml'));
  const calls = watching(join(dir, 'routes.yaml'));
  let n = 1;
  const editUntil = (target: string, count: number) =>
    vi.waitFor(
      async () => {
        await writeFile(join(target, 'routes.yaml'), `version: ${++n}\n`);
        expect(calls.count).toBeGreaterThanOrEqual(count);
      },
      { timeout: 3_000, interval: 50 },
    );
  await editUntil(first, 1);
  await symlink(join(second, 'routes.yaml'), join(dir, 'routes.yaml.tmp'));
  await rename(join(dir, 'routes.yaml.tmp'), join(dir, 'routes.yaml'));
  // Heard in `second`: the look at the chain that armed it has let `first` go.
  await editUntil(second, calls.count + 1);
  // Witnesses with a longer debounce: once each is called, every call its writes could cause has been made.
  const settled = watching(join(second, 'routes.yaml'), { debounceMs: 150 });
  await writeFile(join(second, 'routes.yaml'), `version: ${++n}\n`);
  await called(settled);
  const before = calls.count;
  const old = watching(join(first, 'routes.yaml'), { debounceMs: 150 });
  await writeFile(join(first, 'routes.yaml'), `version: ${++n}\n`);
  await called(old);
  expect(calls.count).toBe(before);
});
