import { routesYaml } from './proxy.js';

export interface CanaryYamlOptions {
  /** Top-level keys written before `identity` (e.g. `auditLog: audit.jsonl\n`). */
  head?: string;
  /** Routes written after `search` (each line indented as a list item). */
  extraRoutes?: string;
  /** Ends with a catch-all `rest` route to legacy (default true). */
  rest?: boolean;
}

/**
 * The canary scenario the rollout tests share: callers identified by `x-user-id`, services
 * `legacy` and `search-v2`, and route `search` (`/search` → legacy) carrying `canary`.
 */
export function canaryYaml(legacyUrl: string, canaryUrl: string, canary: string, options: CanaryYamlOptions = {}): string {
  const rest = options.rest ?? true ? '  - { name: rest, match: { path: / }, to: legacy }\n' : '';
  return routesYaml(`${options.head ?? ''}identity: { header: x-user-id }
services:
  legacy: { url: ${legacyUrl} }
  search-v2: { url: ${canaryUrl} }
routes:
  - name: search
    match: { path: /search }
    to: legacy
    canary: ${canary}
${options.extraRoutes ?? ''}${rest}`);
}
