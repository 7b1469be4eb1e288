import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { formatIssue } from '../../../src/config/issues.js';
import { loadRoutesFile, MAX_FILE_BYTES, parseRoutes } from '../../../src/config/load.js';
import { tempDir } from '../../helpers/proxy.js';

const errors = (text: string) => {
  const loaded = parseRoutes(text, 'r.yaml', {});
  return loaded.ok ? [] : loaded.issues.map(formatIssue);
};

describe('documents that are not a routes file', () => {
  test.each([
    ['an empty file', '', ['r.yaml:1:1 version: "version" is required', 'r.yaml:1:1 services: "services" is required', 'r.yaml:1:1 routes: "routes" is required']],
    ['a list', '- a\n- b\n', ['r.yaml:1:1 expected object, received array']],
    ['a scalar', 'hello\n', ['r.yaml:1:1 expected object, received string']],
    ['two documents', 'version: 1\n---\nversion: 1\n', ['r.yaml:2:1 YAML syntax error: a routes file is one YAML document; remove this "---" and what follows it, or merge it into the first']],
  ])('%s', (_name, text, expected) => {
    expect(errors(text)).toEqual(expected);
  });

  test('an alias bomb is refused, not expanded', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const [first] = errors(`${levels.join('\n')}\n`);
    expect(first).toMatch(/^r\.yaml:1:1 cannot expand the document: /);
  });

  test('an anchor reused inside another reused anchor is no bomb (201 routes)', () => {
    const routes = ['  - { name: r0, match: { path: /r0 }, to: legacy, shadow: { to: next, ignoreHeaders: &ign [date, x-served-by] } }'];
    for (let i = 1; i <= 100; i++) routes.push(`  - { name: a${i}, match: { path: /a${i} }, to: legacy, shadow: { to: next, ignoreHeaders: *ign } }`);
    routes.push('  - { name: s0, match: { path: /s0 }, to: legacy, shadow: &sh { to: next, compare: true, ignoreHeaders: *ign } }');
    for (let i = 1; i <= 99; i++) routes.push(`  - { name: b${i}, match: { path: /b${i} }, to: legacy, shadow: *sh }`);
    const text = `version: 1\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\n  next: { url: http://127.0.0.1:3002 }\nroutes:\n${routes.join('\n')}\n`;
    expect(errors(text)).toEqual([]);
  });

  test('an anchor reused on hundreds of routes is no bomb', () => {
    const routes = Array.from({ length: 300 }, (_, i) => `  - { name: r${i}, match: { path: /r${i} }, to: legacy, canary: { to: next, weight: 5, analysis: ${i === 0 ? '&analysis { interval: 5s }' : '*analysis'} } }`);
    const text = `version: 1\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\n  next: { url: http://127.0.0.1:3002 }\nroutes:\n${routes.join('\n')}\n`;
    expect(errors(text)).toEqual([]);
  });

  test('more than 10,000 aliases are refused, with their count: each costs the YAML library a scan of all those before it', () => {
    const methods = ['&m GET', ...Array.from({ length: 10_001 }, () => '*m')].join(', ');
    const text = `version: 1\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\nroutes:\n  - { name: r, match: { path: /r, methods: [${methods}] }, to: legacy }\n`;
    expect(errors(text)).toEqual(['r.yaml:1:1 the document has 10001 aliases, more than the 10000 ficus expands (each costs a scan of all those before it); write the repeated values out, or reuse fewer']);
  });
});

test('a name is what the file says, even where YAML would read a number or null', () => {
  const lines = errors(`version: 1
services:
  legacy: { url: http://127.0.0.1:1 }
  2.0: { url: http://127.0.0.1:2 }
  null: { url: http://127.0.0.1:3 }
toggles:
  1.50: {}
  0x1F: {}
  1e3: {}
routes:
  - { name: a, match: { path: /a, toggle: "1.50" }, to: "2.0" }
  - { name: b, match: { path: /b, toggle: "0x1F" }, to: "null" }
  - { name: c, match: { path: /c, toggle: "1e3" }, to: legacy }
  - { name: d, match: { path: /d, toggle: "1.5" }, to: legacy }
`);
  // Only the reference to a name the file does not have is an error.
  expect(lines).toEqual(['r.yaml:14:43 routes.3.match.toggle: unknown toggle "1.5"']);
});

test('a merge key is named as what it is, with what to write instead', () => {
  expect(errors('version: 1\nservices:\n  legacy: &base { url: http://127.0.0.1:1 }\n  other:\n    <<: *base\nroutes: []\n')).toContain(
    'r.yaml:5:5 services.other.<<: merge keys (<<: *name) are not supported: write the keys out, or make the whole value an alias (key: *name)',
  );
});

test('an alias that names no anchor is reported where it is written', () => {
  expect(errors('version: 1\nservices:\n  legacy: { url: http://127.0.0.1:1 }\nroutes:\n  - name: a\n    match: *nomatch\n    to: legacy\n')).toEqual([
    'r.yaml:6:12 routes.0.match: alias *nomatch names no anchor &nomatch written before it',
  ]);
});

test('issues come sorted by position, whatever found them', () => {
  const lines = errors(`version: 1
services:
  a: { url: http://127.0.0.1:1, bogus: 1 }
routes:
  - { name: x, match: { path: /a/../b }, to: nope }
  - { name: x, match: {}, to: a, extra: 1 }
`);
  expect(lines).toEqual([
    'r.yaml:3:33 services.a.bogus: unknown key "bogus"',
    'r.yaml:5:31 routes.0.match.path: "/a/../b" is not a normalized path (write "/b")',
    'r.yaml:5:46 routes.0.to: unknown service "nope"',
    'r.yaml:6:13 routes.1.name: duplicate route name "x" (also routes.0)',
    'r.yaml:6:34 routes.1.extra: unknown key "extra"',
  ]);
});

test('a byte-order mark moves no position: line 1 counts its columns from after it', () => {
  const text = 'version: 2\nlisten: { host: 127.0.0.1, port: nope }\n';
  const positions = (t: string) => {
    const loaded = parseRoutes(t, 'routes.yaml', {});
    return loaded.ok ? [] : loaded.issues.map(formatIssue);
  };
  expect(positions(text)).toContain('routes.yaml:1:10 version: expected 1');
  expect(positions(`\uFEFF${text}`)).toEqual(positions(text));
  // The hash is of the file as it is, mark included.
  expect(parseRoutes(`\uFEFF${text}`, 'routes.yaml', {}).hash).not.toBe(parseRoutes(text, 'routes.yaml', {}).hash);
});

test('a duplicate key is reported with every other error, and keys YAML types apart but the config reads as one are duplicates', () => {
  const text = [
    'version: 1',
    'services:',
    '  legacy: { url: http://127.0.0.1:3001 }',
    '  1.5: { url: http://127.0.0.1:3002 }',
    '  "1.5": { url: http://127.0.0.1:3003 }',
    '  legacy: { url: http://127.0.0.1:3004 }',
    'routes:',
    '  - { name: a, match: { path: /, path: /x, exact: /a, exact: /b }, to: nope }',
    '',
  ].join('\n');
  const loaded = parseRoutes(text, 'routes.yaml', {});
  expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([
    'routes.yaml:5:3 services.1.5: duplicate key',
    'routes.yaml:6:3 services.legacy: duplicate key',
    'routes.yaml:8:34 routes.0.match.path: duplicate key',
    'routes.yaml:8:55 routes.0.match.exact: duplicate key',
    'routes.yaml:8:72 routes.0.to: unknown service "nope"',
  ]);
});

test.each([
  ['the audit log is the routes file', 'auditLog: ./routes.yaml\n', 'routes.yaml:2:11 auditLog: ./routes.yaml is the routes file itself; give it a file of its own'],
  ['the state file is the routes file, by its absolute path', `stateFile: ${process.cwd()}/conf/routes.yaml\n`, `routes.yaml:2:12 stateFile: ${process.cwd()}/conf/routes.yaml is the routes file itself; give it a file of its own`],
  ['the state file is the audit log', 'auditLog: ficus.log\nstateFile: ./ficus.log\n', 'routes.yaml:3:12 stateFile: ./ficus.log is the auditLog too; give it a file of its own'],
])('a file ficus writes may not be one it reads or writes already: %s', (_name, head, issue) => {
  const loaded = parseRoutes(`version: 1\n${head}services:\n  legacy: { url: http://127.0.0.1:3001 }\nroutes: []\n`, 'conf/routes.yaml', {});
  expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([issue.replace('routes.yaml:', 'conf/routes.yaml:')]);
});

test('the hash identifies the text: 16 hex digits, equal for equal text', () => {
  const text = 'version: 1\nservices: {}\nroutes: []\n';
  const a = parseRoutes(text, 'a.yaml', {});
  const b = parseRoutes(text, 'b.yaml', {});
  const c = parseRoutes(`${text}# changed\n`, 'a.yaml', {});
  expect(a.hash).toMatch(/^[0-9a-f]{16}$/);
  expect(b.hash).toBe(a.hash);
  expect(c.hash).not.toBe(a.hash);
});

describe('loadRoutesFile', () => {
  test('reads the file and names it as given', async () => {
    const dir = await tempDir();
    const file = join(dir, 'routes.yaml');
    await writeFile(file, 'version: 1\nservices: {}\nroutes:\n  - { name: a, match: {}, to: b }\n');
    const loaded = await loadRoutesFile(file, {});
    expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([`${file}:4:31 routes.0.to: unknown service "b"`]);
  });

  test('a file over 16 MiB is refused before it is read: parsing it would take gigabytes', async () => {
    const dir = await tempDir();
    const file = join(dir, 'routes.yaml');
    // Sparse: the size is all that is looked at.
    await writeFile(file, 'version: 1\n');
    await truncate(file, MAX_FILE_BYTES + 1);
    const loaded = await loadRoutesFile(file, {});
    expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([`${file}:1:1 the file is ${MAX_FILE_BYTES + 1} bytes, more than the ${MAX_FILE_BYTES} ficus reads (a routes file that large would take gigabytes to load)`]);
  });

  test('a byte that is not UTF-8 is reported where it is, never read as U+FFFD', async () => {
    const dir = await tempDir();
    const file = join(dir, 'routes.yaml');
    const text = 'version: 1\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\nroutes:\n  - name: fr\n    match: { headers: { x-lang: "fran\u00e7ais" } }\n    to: legacy\n';
    await writeFile(file, Buffer.from(text, 'latin1'));
    const loaded = await loadRoutesFile(file, {});
    expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([`${file}:6:38 a byte here is not UTF-8: save the file as UTF-8`]);
    await writeFile(file, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
    const utf16 = await loadRoutesFile(file, {});
    expect(utf16.ok ? [] : utf16.issues.map(formatIssue)).toEqual([`${file}:1:1 the file is UTF-16 text: save it as UTF-8`]);
  });

  test('the column of a byte that is not UTF-8 counts the characters before it, as every other column does', async () => {
    const dir = await tempDir();
    const file = join(dir, 'routes.yaml');
    // "déjà" is written in UTF-8 (two bytes each for é and à); the ç after it is a Latin-1 byte.
    const head = Buffer.from('version: 1\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\nroutes:\n  - name: fr\n    match: { headers: { x-lang: "d\u00e9j\u00e0 ', 'utf8');
    const tail = Buffer.from('\u00e7a" } }\n    to: legacy\n', 'latin1');
    await writeFile(file, Buffer.concat([head, tail]));
    const loaded = await loadRoutesFile(file, {});
    expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([`${file}:6:39 a byte here is not UTF-8: save the file as UTF-8`]);
  });

  test('a file rejected for a byte that is not UTF-8 and the same text saved with U+FFFD in its place differ: the fix is not skipped as seen', async () => {
    const dir = await tempDir();
    const file = join(dir, 'routes.yaml');
    await writeFile(file, Buffer.from('version: 1\nx: caf\u00e9\n', 'latin1'));
    const bad = await loadRoutesFile(file, {});
    await writeFile(file, 'version: 1\nx: caf\ufffd\n');
    const fixed = await loadRoutesFile(file, {});
    expect(bad.hash).not.toBe(fixed.hash);
  });

  test('a missing file is one issue, not an exception', async () => {
    const loaded = await loadRoutesFile('no/such/routes.yaml', {});
    expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual(['no/such/routes.yaml:1:1 cannot read file (ENOENT)']);
  });
});

test('a listen host that is empty (an unset variable, say) is refused: Node would listen on every interface', () => {
  expect(errors('version: 1\nlisten: { host: "" }\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\nroutes: []\n')).toEqual([
    'r.yaml:2:17 listen.host: expected an address such as 0.0.0.0 or 127.0.0.1, not an empty string (which listens on every interface)',
  ]);
});
