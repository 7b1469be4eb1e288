import { describe, expect, test } from 'vitest';
import { formatIssue } from '../../../src/config/issues.js';
import { parseRoutes } from '../../../src/config/load.js';
import type { RoutesFile } from '../../../src/config/schema.js';

const ROUTES = 'services:\n  legacy: { url: http://127.0.0.1:3001 }\nroutes: []\n';

function load(head: string, env: Record<string, string>): { config?: RoutesFile; errors: string[] } {
  const loaded = parseRoutes(`version: 1\n${head}${ROUTES}`, 'routes.yaml', env);
  return loaded.ok ? { config: loaded.config, errors: [] } : { errors: loaded.issues.map(formatIssue) };
}

describe('${env:NAME} and ${env:NAME:-default} in values', () => {
  test.each<[string, string, Record<string, string>, (config: RoutesFile) => unknown, unknown]>([
    ['an unquoted number stays a number', 'listen:\n  port: ${env:PORT}\n', { PORT: '8081' }, (c) => c.listen.port, 8081],
    ['a default is used when the variable is unset', 'listen:\n  port: ${env:PORT:-9000}\n', {}, (c) => c.listen.port, 9000],
    ['the variable wins over the default', 'listen:\n  port: ${env:PORT:-9000}\n', { PORT: '7000' }, (c) => c.listen.port, 7000],
    ['an empty variable without a default stays empty', 'admin:\n  token: "${env:TOKEN}"\n', { TOKEN: '' }, (c) => c.admin.token, ''],
    ['an empty variable is a value: the default is for an unset one only (an empty token turns preview off)', 'admin:\n  token: "${env:TOKEN:-fallback}"\n', { TOKEN: '' }, (c) => c.admin.token, ''],
    ['an empty default', 'admin:\n  token: "${env:TOKEN:-}"\n', {}, (c) => c.admin.token, ''],
    ['a quoted number-like value stays a string', 'admin:\n  token: "${env:TOKEN}"\n', { TOKEN: '1234' }, (c) => c.admin.token, '1234'],
    ['an unquoted boolean', 'accessLog: ${env:ACCESS_LOG}\n', { ACCESS_LOG: 'false' }, (c) => c.accessLog, false],
    ['inside a longer string', 'listen:\n  host: "10.0.${env:NET}.1"\n', { NET: '3' }, (c) => c.listen.host, '10.0.3.1'],
    ['two references in one value', 'listen:\n  host: ${env:A}.${env:B:-0}.0.1\n', { A: '127' }, (c) => c.listen.host, '127.0.0.1'],
    ['a default containing ":" and "/"', 'drainTimeout: ${env:DRAIN:-1s}\nlisten: { host: "${env:H:-::1}" }\n', {}, (c) => [c.drainTimeout, c.listen.host], ['1s', '::1']],
    ['a value is not expanded again', 'admin:\n  token: "${env:TOKEN}"\n', { TOKEN: '${env:OTHER}' }, (c) => c.admin.token, '${env:OTHER}'],
    ['a quoted reference in a flow map', 'admin: { token: "${env:TOKEN}" }\n', { TOKEN: 't' }, (c) => c.admin.token, 't'],
  ])('%s', (_name, head, env, read, expected) => {
    const { config, errors } = load(head, env);
    expect(errors).toEqual([]);
    expect(config && read(config)).toEqual(expected);
  });
});

describe('reference errors are reported at the value that holds them', () => {
  test.each<[string, string, Record<string, string>, string[]]>([
    ['a missing variable (and no second error for the type it left behind)', 'listen:\n  port: ${env:PORT}\n', {}, [
      'routes.yaml:3:9 listen.port: environment variable PORT is not set (write ${env:PORT:-default} to allow that)',
    ]],
    ['two missing variables in one file', 'listen:\n  host: "${env:HOST}"\nadmin:\n  token: "x-${env:TOKEN}"\n', {}, [
      'routes.yaml:3:9 listen.host: environment variable HOST is not set (write ${env:HOST:-default} to allow that)',
      'routes.yaml:5:10 admin.token: environment variable TOKEN is not set (write ${env:TOKEN:-default} to allow that)',
    ]],
    ['a name that is not a variable name', 'admin:\n  token: "${env:ADMIN-TOKEN}"\n', { 'ADMIN-TOKEN': 'x' }, [
      'routes.yaml:3:10 admin.token: malformed reference ${env:ADMIN-TOKEN} (write ${env:NAME} or ${env:NAME:-default})',
    ]],
    ['an unterminated reference', 'admin:\n  token: "${env:TOKEN"\n', { TOKEN: 'x' }, [
      'routes.yaml:3:10 admin.token: malformed reference ${env:TOKEN (write ${env:NAME} or ${env:NAME:-default})',
    ]],
    // The first `}` would end the outer reference and leave the rest as text: a guessable token.
    ['a reference nested in a default, the outer variable unset', 'admin:\n  token: "${env:A:-${env:B}}"\n', { B: 'b' }, [
      'routes.yaml:3:10 admin.token: a default cannot hold another reference: ${env:A:-${env:B}} (set A instead)',
    ]],
    ['a reference nested in a default, the outer variable set', 'admin:\n  token: "${env:A:-${env:B}}"\n', { A: 'secret' }, [
      'routes.yaml:3:10 admin.token: a default cannot hold another reference: ${env:A:-${env:B}} (set A instead)',
    ]],
    // The error names the reference the value came from, never the value (it may be a secret).
    ['a quoted reference where a number is needed', 'listen:\n  port: "${env:PORT}"\n', { PORT: '8080' }, [
      'routes.yaml:3:9 listen.port: expected number, received string (the value of ${env:PORT})',
    ]],
    ['a variable whose value is no number', 'listen:\n  port: ${env:PORT}\n', { PORT: 'abc' }, [
      'routes.yaml:3:9 listen.port: expected number, received string (the value of ${env:PORT})',
    ]],
    ['an unquoted reference inside { } (YAML syntax)', 'listen: { port: ${env:PORT} }\n', { PORT: '8080' }, [
      'routes.yaml:2:17 listen.port: inside { } or [ ], write "${env:…}" in quotes (YAML syntax), or move the key to a line of its own (block style) where a number must stay a number',
    ]],
  ])('%s', (_name, head, env, expected) => {
    expect(load(head, env).errors).toEqual(expected);
  });

  test('a key is a name, never substituted', () => {
    const loaded = parseRoutes('version: 1\nservices:\n  "${env:NAME}": { url: http://127.0.0.1:1 }\nroutes: []\n', 'routes.yaml', { NAME: 'legacy' });
    expect(loaded.ok ? [] : loaded.issues.map(formatIssue)).toEqual([
      'routes.yaml:3:3 services.${env:NAME}: invalid name "${env:NAME}": names use letters, digits, ".", "_" and "-"',
    ]);
  });
});
