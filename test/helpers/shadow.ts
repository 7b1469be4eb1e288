import { routesYaml } from './proxy.js';

/**
 * One route, `api` on every path, answered by `legacy` and copied to `fresh` with comparison;
 * `options` continues the shadow block (`, maxConcurrent: 1`), `top` adds top-level keys.
 */
export function shadowRoutesYaml(legacyUrl: string, freshUrl: string, options = '', top = ''): string {
  return routesYaml(`${top}services:
  legacy: { url: ${legacyUrl} }
  fresh: { url: ${freshUrl} }
routes:
  - name: api
    match: { path: / }
    to: legacy
    shadow: { to: fresh, compare: true${options} }
`);
}
