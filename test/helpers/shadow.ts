import { routesYaml, startProxy, type TestProxy } from './proxy.js';
import { startUpstream, type Upstream } from './upstream.js';

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

/**
 * Upstreams `legacy` and `fresh`, and a proxy whose route `api` (every path) goes to legacy
 * with `shadow: <shadowBlock>`; `extraRoutes` come before it.
 */
export async function startShadowed(shadowBlock: string, extraRoutes = '', options: Parameters<typeof startProxy>[1] = {}): Promise<{ legacy: Upstream; fresh: Upstream; proxy: TestProxy }> {
  const legacy = await startUpstream('legacy');
  const fresh = await startUpstream('fresh');
  const proxy = await startProxy(
    routesYaml(`services:
  legacy: { url: ${legacy.url} }
  fresh: { url: ${fresh.url} }
routes:
${extraRoutes}  - name: api
    match: { path: / }
    to: legacy
    shadow: ${shadowBlock}
`),
    options,
  );
  return { legacy, fresh, proxy };
}
