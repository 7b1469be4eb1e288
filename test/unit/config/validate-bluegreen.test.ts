import { expect, test } from 'vitest';
import { formatIssue } from '../../../src/config/issues.js';
import { parseRoutes } from '../../../src/config/load.js';

/**
 * A blue/green service as `ficus check` reports it: each case is one file (line 1 is
 * `version: 1`, the service's name on line 3) and the exact lines printed for it.
 */
function errors(service: string): string[] {
  const loaded = parseRoutes(`version: 1\nservices:\n  orders:\n${service}routes: []\n`, 'r.yaml', {});
  return loaded.ok ? [] : loaded.issues.map(formatIssue);
}

const BLUE = '    blue: { url: http://127.0.0.1:3201 }\n';
const GREEN = '    green: { urls: [http://127.0.0.1:3202, http://127.0.0.1:3203] }\n';
const ACTIVE = '    active: blue\n';

test.each([
  ['both colours and `active`', `${BLUE}${GREEN}${ACTIVE}`],
  ['`active: green`', `${BLUE}${GREEN}    active: green\n`],
  ['a preview door', `${BLUE}${GREEN}${ACTIVE}    preview: { header: x-ficus-preview, token: s3cret }\n`],
  ['a guard (auto-rollback after a cutover)', `${BLUE}${GREEN}${ACTIVE}    guard: { window: 5m, maxErrorRate: 0.05 }\n`],
  ['a guard with every key', `${BLUE}${GREEN}${ACTIVE}    guard: { interval: 1s, window: 1m, minRequests: 5, maxErrorRate: 0.05, maxP99: 800ms, maxErrorRateVsStable: 2, maxP99VsStable: 2, consecutiveFailures: 5 }\n`],
  ['a preview door closed by an empty token', `${BLUE}${GREEN}${ACTIVE}    preview: { header: x-ficus-preview, token: "" }\n`],
  ['service-wide settings beside the colours', `${BLUE}${GREEN}${ACTIVE}    timeouts: { response: 2s }\n    balance: least-request\n    outlier: { consecutiveFailures: 3 }\n    legacy: true\n`],
])('valid: %s', (_name, service) => {
  expect(errors(service)).toEqual([]);
});

test.each([
  ['no green', `${BLUE}${ACTIVE}`, ['r.yaml:3:3 services.orders: a blue/green service needs "blue", "green" and "active" (missing "green")']],
  ['no active', `${BLUE}${GREEN}`, ['r.yaml:3:3 services.orders: a blue/green service needs "blue", "green" and "active" (missing "active")']],
  ['only active', ACTIVE, ['r.yaml:3:3 services.orders: a blue/green service needs "blue", "green" and "active" (missing "blue", "green")']],
  ['a top-level `url` beside the colours', `    url: http://127.0.0.1:9\n${BLUE}${GREEN}${ACTIVE}`,
    ['r.yaml:4:5 services.orders.url: a blue/green service takes its URLs in "blue" and "green", not in "url"']],
  ['a top-level `urls` beside the colours', `${BLUE}${GREEN}${ACTIVE}    urls: [http://127.0.0.1:9]\n`,
    ['r.yaml:7:5 services.orders.urls: a blue/green service takes its URLs in "blue" and "green", not in "urls"']],
  ['a colour with both `url` and `urls`, another with neither', `    blue: { url: http://127.0.0.1:1, urls: [http://127.0.0.1:3] }\n    green: {}\n${ACTIVE}`,
    ['r.yaml:4:5 services.orders.blue: the blue colour needs exactly one of "url" or "urls"', 'r.yaml:5:5 services.orders.green: the green colour needs exactly one of "url" or "urls"']],
  ['`active` naming no colour', `${BLUE}${GREEN}    active: purple\n`, ['r.yaml:6:13 services.orders.active: Invalid option: expected one of "blue"|"green"']],
  ['a colour with settings of its own', `    blue: { url: http://127.0.0.1:3201, balance: least-request }\n${GREEN}${ACTIVE}`,
    ['r.yaml:4:41 services.orders.blue.balance: unknown key "balance"']],
  ['a colour URL with credentials', `    blue: { url: "http://u:p@127.0.0.1:3201" }\n${GREEN}${ACTIVE}`,
    ['r.yaml:4:18 services.orders.blue.url: a service URL must not contain credentials (user:password@)']],
  ['preview without a token', `${BLUE}${GREEN}${ACTIVE}    preview: { header: x-p }\n`, ['r.yaml:7:14 services.orders.preview.token: "token" is required']],
  ['preview without a header', `${BLUE}${GREEN}${ACTIVE}    preview: { token: t }\n`, ['r.yaml:7:14 services.orders.preview.header: "header" is required']],
  ['preview on a plain service', '    url: http://127.0.0.1:1\n    preview: { header: x-p, token: t }\n',
    ['r.yaml:5:5 services.orders.preview: preview needs a blue/green service ("blue", "green" and "active")']],
  ['guard on a plain service', '    url: http://127.0.0.1:1\n    guard: { window: 5m }\n',
    ['r.yaml:5:5 services.orders.guard: guard needs a blue/green service ("blue", "green" and "active")']],
  ['a guard whose maxP99 no window could read', `${BLUE}${GREEN}${ACTIVE}    guard: { maxP99: 100h }
`,
    ['r.yaml:7:22 services.orders.guard.maxP99: at most 29h: no longer latency is told apart, so a higher maxP99 could never be exceeded']],
  ['a guard watching for no time', `${BLUE}${GREEN}${ACTIVE}    guard: { window: 0s, interval: 0ms }\n`,
    ['r.yaml:7:22 services.orders.guard.window: must be longer than 0', 'r.yaml:7:36 services.orders.guard.interval: must be longer than 0']],
])('invalid: %s', (_name, service, expected) => {
  expect(errors(service)).toEqual(expected);
});
