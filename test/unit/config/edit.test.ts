import { describe, expect, test } from 'vitest';
import { editRoutes, type EditOutcome, type EditRequest } from '../../../src/config/edit.js';
import { formatIssue } from '../../../src/config/issues.js';
import { parseRoutes } from '../../../src/config/load.js';

/*
 * `ficus cutover|weight|toggle` on the text of a routes file: one value changes, every other
 * byte stays as the operator wrote it, and anything that would make the file wrong is refused.
 */

/** Comments everywhere, aligned and not; flow maps inside block maps and the reverse; env references. */
const FILE = `# routes.yaml: the migration
version: 1

listen: { host: 127.0.0.1, port: 0 }          # changes need a restart
admin:                                         # the admin API
  host: 127.0.0.1
  port: 0
  token: "\${env:FICUS_ADMIN_TOKEN:-}"          # empty: no token

identity: { header: x-user-id }

services:
  legacy:   { url: "\${env:LEGACY_URL:-http://127.0.0.1:3001}" }   # the monolith
  search-v2: { url: http://127.0.0.1:3301 }
  orders:
    blue:   { url: http://127.0.0.1:3201 }     # release 41
    green:  { url: http://127.0.0.1:3202 }     # release 42
    active: blue                               # flip with: ficus cutover orders green
  quoted:
    blue:  { url: http://127.0.0.1:3203 }
    green: { url: http://127.0.0.1:3204 }
    active: "green"

cohorts:
  staff: { users: [alice, bob] }

toggles:
  invoices:     { enabled: true }              # kill switch
  new-checkout: { percent: 10, cohorts: [staff] }
  dark-mode:
    users:
      - alice   # she asked for it
    # percent: 50 once it is ready
  empty: {}

routes:
  - name: invoices-off                 # first match wins
    match: { path: /invoices, toggle: "!invoices" }
    respond: { status: 503, body: "Invoices are paused" }
  - name: search
    match: { path: /search }
    to: legacy                          # the stable side
    canary:
      to: search-v2
      weight: 5                         # percent of users
  - name: rest
    match: { path: / }
    to: legacy
`;

const ENV = { LEGACY_URL: 'http://10.9.9.9:3001' };
const edit = (command: EditRequest['command'], target: string, value: string, text = FILE): EditOutcome =>
  editRoutes(text, 'routes.yaml', { command, target, value }, ENV);

function changed(outcome: EditOutcome): Extract<EditOutcome, { result: 'changed' }> {
  if (outcome.result !== 'changed') throw new Error(`expected a change, got ${JSON.stringify(outcome)}`);
  return outcome;
}

test('the fixture is a valid routes file, so every refusal below is the edit\'s doing', () => {
  const loaded = parseRoutes(FILE, 'routes.yaml', ENV);
  expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([]);
});

describe('one line changes; every other line, comment and ${env:…} stays byte for byte', () => {
  test.each([
    { command: 'cutover', target: 'orders', value: 'green', line: 18, replace: ['active: blue', 'active: green'], diff: ['active', 'blue', 'green'] },
    { command: 'cutover', target: 'quoted', value: 'blue', line: 22, replace: ['"green"', '"blue"'], diff: ['active', '"green"', '"blue"'] },
    { command: 'weight', target: 'search', value: '25', line: 45, replace: ['weight: 5', 'weight: 25'], diff: ['weight', '5', '25'] },
    { command: 'weight', target: 'search', value: '12.5%', line: 45, replace: ['weight: 5', 'weight: 12.5'], diff: ['weight', '5', '12.5'] },
    { command: 'toggle', target: 'invoices', value: 'off', line: 28, replace: ['enabled: true', 'enabled: false'], diff: ['enabled', 'true', 'false'] },
    { command: 'toggle', target: 'new-checkout', value: '30', line: 29, replace: ['percent: 10', 'percent: 30'], diff: ['percent', '10', '30'] },
  ] as const)('$command $target $value', ({ command, target, value, line, replace, diff }) => {
    const outcome = changed(edit(command, target, value));
    const before = FILE.split('\n');
    const lines = outcome.text.split('\n');
    expect(lines).toHaveLength(before.length);
    expect(lines.flatMap((text, i) => (text === before[i] ? [] : [i + 1]))).toEqual([line]);
    // The rest of the line is as it was, and an end-of-line comment stays in its column: the
    // spaces before it take up the value's new length.
    const was = before[line - 1] ?? '';
    expect(lines[line - 1]?.replace(/ +#/, ' #')).toBe(was.replace(replace[0], replace[1]).replace(/ +#/, ' #'));
    if (was.includes('#')) expect(lines[line - 1]?.indexOf('#')).toBe(was.indexOf('#'));
    expect(outcome.change).toMatchObject({ line, key: diff[0], fromText: diff[1], toText: diff[2], command, target });
  });

  test.each([
    { name: 'a flow map gains the key at its end', target: 'new-checkout', value: 'off', line: 29, after: '  new-checkout: { percent: 10, cohorts: [staff], enabled: false }', inserted: false },
    { name: 'an empty flow map gains it between its braces', target: 'empty', value: '5', line: 34, after: '  empty: { percent: 5 }', inserted: false },
    { name: 'a block map gains a line after its last entry, at its indentation', target: 'dark-mode', value: '50', line: 33, after: '    percent: 50', inserted: true },
  ])('a key not written yet: $name', ({ target, value, line, after, inserted }) => {
    const outcome = changed(edit('toggle', target, value));
    const expected = FILE.split('\n');
    if (inserted) expected.splice(line - 1, 0, after);
    else expected[line - 1] = after;
    expect(outcome.text.split('\n')).toEqual(expected);
    expect(outcome.change).toMatchObject({ line, fromText: undefined, from: null });
  });

  test('a comment with no room to stay in its column moves as little as it must; a # inside a string is no comment', () => {
    const tight = changed(edit('cutover', 'orders', 'green', FILE.replace('active: blue                               #', 'active: blue #')));
    expect(tight.text).toContain('    active: green # flip with');
    const text = FILE.replace(
      '  quoted:\n    blue:  { url: http://127.0.0.1:3203 }\n    green: { url: http://127.0.0.1:3204 }\n    active: "green"\n',
      '  quoted: { blue: { url: http://127.0.0.1:3203 }, green: { url: http://127.0.0.1:3204 }, active: blue, preview: { header: x-p, token: "a     #b" } }   # flow\n',
    );
    const flow = changed(edit('cutover', 'quoted', 'green', text));
    // Keys stand between the value and the comment: the line is left as it is, the string above all.
    expect(flow.text).toContain('active: green, preview: { header: x-p, token: "a     #b" } }   # flow\n');
  });

  test('environment references are kept as written, never replaced by their values', () => {
    const outcome = changed(edit('cutover', 'orders', 'green'));
    expect(outcome.text).toContain('"${env:LEGACY_URL:-http://127.0.0.1:3001}"');
    expect(outcome.text).toContain('"${env:FICUS_ADMIN_TOKEN:-}"');
    expect(outcome.text).not.toContain(ENV.LEGACY_URL);
    // The validated result is what the proxy will run: substituted there, not in the file.
    expect(outcome.config.services.legacy?.url).toBe(ENV.LEGACY_URL);
  });

  test('the values as YAML reads them are reported for the audit log', () => {
    expect(changed(edit('weight', 'search', '25')).change).toMatchObject({ path: 'routes.1.canary.weight', from: 5, to: 25 });
    expect(changed(edit('toggle', 'invoices', 'off')).change).toMatchObject({ path: 'toggles.invoices.enabled', from: true, to: false });
    expect(changed(edit('cutover', 'orders', 'green')).change).toMatchObject({ path: 'services.orders.active', from: 'blue', to: 'green' });
  });

  test('a file with Windows line ends keeps them, the added line too', () => {
    const text = FILE.replaceAll('\n', '\r\n');
    const outcome = changed(edit('toggle', 'dark-mode', '50', text));
    expect(outcome.text.replaceAll('\r\n', '')).not.toContain('\n');
    expect(outcome.text.split('\r\n')[32]).toBe('    percent: 50');
  });

  test('a block map at the very end of a file without a final newline', () => {
    const text = 'version: 1\nservices:\n  legacy: { url: http://127.0.0.1:1 }\nroutes: []\ntoggles:\n  last:\n    users: [alice]';
    expect(changed(edit('toggle', 'last', '20', text)).text).toBe(`${text}\n    percent: 20`);
  });
});

describe('nothing to change: no new text', () => {
  test.each([
    { command: 'cutover', target: 'orders', value: 'blue', reason: 'active is already blue' },
    { command: 'weight', target: 'search', value: '5', reason: 'weight is already 5' },
    { command: 'toggle', target: 'invoices', value: 'on', reason: 'enabled is already true' },
    { command: 'toggle', target: 'new-checkout', value: 'on', reason: 'enabled is not written, which means true' },
  ] as const)('$command $target $value', ({ command, target, value, reason }) => {
    expect(edit(command, target, value)).toMatchObject({ result: 'unchanged', reason });
  });
});

test('an `enabled:` written with no value is refused, not taken for a key left unwritten ("nothing to change")', () => {
  const text = FILE.replace('invoices:     { enabled: true }', 'invoices:     { enabled: }');
  expect(edit('toggle', 'invoices', 'on', text)).toEqual({ result: 'refused', message: 'toggles.invoices.enabled is written with no value; give it one by hand', issues: [] });
});

describe('refused, with a message that says why', () => {
  test.each([
    { command: 'cutover', target: 'ordrs', value: 'green', says: 'no service named "ordrs" (services: legacy, search-v2, orders, quoted)' },
    { command: 'cutover', target: 'legacy', value: 'green', says: 'service "legacy" is not a blue/green service' },
    { command: 'cutover', target: 'orders', value: 'red', says: 'the colour must be "blue" or "green", not "red"' },
    { command: 'weight', target: 'serch', value: '10', says: 'no route named "serch" (routes: invoices-off, search, rest)' },
    { command: 'weight', target: 'rest', value: '10', says: 'route "rest" has no canary' },
    { command: 'weight', target: 'search', value: '150', says: 'the weight must be a number from 0 to 100, not "150"' },
    { command: 'weight', target: 'search', value: 'ten', says: 'the weight must be a number from 0 to 100, not "ten"' },
    { command: 'weight', target: 'search', value: '1e2', says: 'the weight must be a number from 0 to 100, not "1e2"' },
    { command: 'toggle', target: 'invoice', value: 'off', says: 'no toggle named "invoice" (toggles: invoices, new-checkout, dark-mode, empty)' },
    { command: 'toggle', target: 'invoices', value: '101', says: 'the percentage (or "on"/"off") must be a number from 0 to 100, not "101"' },
    { command: 'toggle', target: 'invoices', value: 'maybe', says: 'the percentage (or "on"/"off") must be a number from 0 to 100, not "maybe"' },
  ] as const)('$command $target $value', ({ command, target, value, says }) => {
    const outcome = edit(command, target, value);
    expect(outcome.result).toBe('refused');
    expect(outcome.result === 'refused' && outcome.message).toContain(says);
  });

  test('a value set from the environment is the environment\'s to change', () => {
    const text = FILE.replace('weight: 5 ', 'weight: ${env:SEARCH_WEIGHT:-5}');
    expect(edit('weight', 'search', '25', text)).toMatchObject({
      result: 'refused',
      message: 'routes.1.canary.weight is set from the environment (${env:SEARCH_WEIGHT:-5}); change the variable, or edit the file by hand',
    });
  });

  test('an anchored or aliased value is left to a human', () => {
    const text = FILE.replace('active: blue', 'active: &live blue');
    expect(edit('cutover', 'orders', 'green', text)).toMatchObject({ result: 'refused', message: expect.stringContaining('anchor, alias or tag') });
  });

  // A change to a shared node would also change every alias of it, out of the operator's sight.
  const SHARED = `version: 1
services:
  legacy: { url: http://127.0.0.1:3001 }
  new: { url: http://127.0.0.1:3002 }
  orders: &pair
    blue: { url: http://127.0.0.1:3201 }
    green: { url: http://127.0.0.1:3202 }
    active: blue
  payments: *pair
toggles:
  a: &on { enabled: true }
  b: *on
routes:
  - { name: one, match: { path: /one }, to: legacy, canary: &five { to: new, weight: 5 } }
  - { name: two, match: { path: /two }, to: legacy, canary: *five }
  - &three { name: three, match: { path: /three }, to: legacy, canary: { to: new, weight: 5 } }
  - { name: rest, match: { path: / }, to: legacy }
`;

  test.each<[EditRequest['command'], string, string, string]>([
    ['cutover', 'orders', 'green', 'services.orders carries the YAML anchor &pair: a change would also change every *pair; edit the file by hand'],
    ['cutover', 'payments', 'green', 'services.payments is a YAML alias (*pair): the value is shared with &pair; edit the file by hand'],
    ['toggle', 'a', 'off', 'toggles.a carries the YAML anchor &on: a change would also change every *on; edit the file by hand'],
    ['toggle', 'b', 'off', 'toggles.b is a YAML alias (*on): the value is shared with &on; edit the file by hand'],
    ['weight', 'one', '50', 'routes.0.canary carries the YAML anchor &five: a change would also change every *five; edit the file by hand'],
    ['weight', 'two', '50', 'routes.1.canary is a YAML alias (*five): the value is shared with &five; edit the file by hand'],
    ['weight', 'three', '50', 'routes.2 carries the YAML anchor &three: a change would also change every *three; edit the file by hand'],
  ])('%s %s through a YAML anchor or alias is refused, naming it', (command, target, value, message) => {
    expect(parseRoutes(SHARED, 'routes.yaml').ok).toBe(true);
    expect(edit(command, target, value, SHARED)).toEqual({ result: 'refused', message, issues: [] });
  });

  test('names YAML reads as numbers or booleans are edited by the name the config knows', () => {
    const text = `version: 1\nservices:\n  legacy: { url: http://127.0.0.1:3001 }\ntoggles:\n  1.5: { enabled: true }\n  true: { enabled: true }\nroutes:\n  - { name: rest, match: { path: / }, to: legacy }\n`;
    const numbered = edit('toggle', '1.5', 'off', text);
    expect(numbered).toMatchObject({ result: 'changed', change: { path: 'toggles.1.5.enabled', from: true, to: false } });
    expect(numbered.result === 'changed' && numbered.text).toContain('  1.5: { enabled: false }\n  true: { enabled: true }');
    expect(edit('toggle', 'true', 'off', text)).toMatchObject({ result: 'changed', change: { path: 'toggles.true.enabled' } });
    expect(edit('toggle', 'nope', 'off', text)).toMatchObject({ result: 'refused', message: 'no toggle named "nope" (toggles: 1.5, true)' });
  });

  test('a result that would not validate is refused with every error, positioned in the file', () => {
    // The file is already wrong elsewhere: writing it would hand the proxy a file it rejects.
    const text = FILE.replace('  - name: rest\n    match: { path: / }\n    to: legacy\n', '  - name: rest\n    match: { path: / }\n    to: legasy\n');
    const outcome = edit('cutover', 'orders', 'green', text);
    expect(outcome).toMatchObject({ result: 'refused', message: 'the edited routes.yaml would be invalid, so it was not written' });
    expect(outcome.result === 'refused' && outcome.issues.map(formatIssue)).toEqual(['routes.yaml:48:9 routes.2.to: unknown service "legasy"']);
  });

  test('a missing environment variable in the edited file is reported, not written', () => {
    const text = FILE.replace('${env:FICUS_ADMIN_TOKEN:-}', '${env:FICUS_EDIT_TEST_UNSET}');
    const outcome = edit('cutover', 'orders', 'green', text);
    expect(outcome.result === 'refused' && outcome.issues.map(formatIssue)).toEqual([
      'routes.yaml:8:10 admin.token: environment variable FICUS_EDIT_TEST_UNSET is not set (write ${env:FICUS_EDIT_TEST_UNSET:-default} to allow that)',
    ]);
  });

  test('a file that is not YAML', () => {
    const outcome = edit('cutover', 'orders', 'green', 'version: 1\nservices: {\n');
    expect(outcome).toMatchObject({ result: 'refused', message: 'routes.yaml is not valid YAML; fix it first (ficus check routes.yaml)' });
    expect(outcome.result === 'refused' && outcome.issues.length).toBeGreaterThan(0);
  });
});

describe('names YAML would read as numbers or null are edited as the file writes them', () => {
  const NAMES = `version: 1
services:
  legacy: { url: http://127.0.0.1:3001 }
  1.50:
    blue: { url: http://127.0.0.1:3201 }
    green: { url: http://127.0.0.1:3202 }
    active: blue
toggles:
  0x1F: { enabled: true }
  null: { enabled: true }
  1e3: { enabled: true }
routes:
  - { name: rest, match: { path: / }, to: "1.50" }
`;
  test.each([
    { command: 'cutover', target: '1.50', value: 'green', path: 'services.1.50.active', line: 7 },
    { command: 'toggle', target: '0x1F', value: 'off', path: 'toggles.0x1F.enabled', line: 9 },
    { command: 'toggle', target: 'null', value: 'off', path: 'toggles.null.enabled', line: 10 },
    { command: 'toggle', target: '1e3', value: 'off', path: 'toggles.1e3.enabled', line: 11 },
  ] as const)('$command $target', ({ command, target, value, path, line }) => {
    expect(parseRoutes(NAMES, 'routes.yaml', {}).ok).toBe(true);
    expect(changed(edit(command, target, value, NAMES)).change).toMatchObject({ path, line });
  });

  test('two names YAML reads as one value cannot be told apart by the edit: refused, to be made by hand', () => {
    const text = NAMES.replace('  1e3: { enabled: true }\n', '  1.5: { enabled: true }\n  1.50: { enabled: true }\n');
    const outcome = edit('toggle', '1.50', 'off', text);
    expect(outcome).toMatchObject({ result: 'refused', message: 'toggle "1.50" has a name YAML reads as another toggle\'s (1.5); edit the file by hand' });
  });
});
