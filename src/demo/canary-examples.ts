import type { Snapshot } from '../config/snapshot.js';
import { explain } from '../explain/explain.js';
import { FAULT_PATH, type DemoService } from './services.js';

/*
 * The tour's immune-system story: a user on the canary, the canary's fault switch flipped, the
 * proxy ejecting it live, and the operator's view of it. Every step is derived from the file
 * (the user is checked by explain to be on the canary) so the story stays true when edited.
 */

export interface CanaryStep {
  command: string;
  says: string;
}

export interface CanaryStory {
  route: string;
  canary: string;
  weight: number;
  steps: CanaryStep[];
}

/** Names to try, in order, for a user on the canary: plain names read better than `user-17`. */
const NAMES = ['carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'niaj', 'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'victor', 'walter'];

/**
 * The first canary route a plain GET reaches whose canary the demo runs (and can break), told
 * through a user the identity header names. Undefined when the file has none.
 */
export function canaryStoryFor(snapshot: Snapshot, proxyUrl: string, adminUrl: string, services: readonly DemoService[]): CanaryStory | undefined {
  const header = snapshot.identity?.header;
  if (header === undefined) return undefined;
  for (const [i, route] of snapshot.routes.entries()) {
    const canary = route.action.kind === 'proxy' ? route.action.canary : undefined;
    const match = snapshot.source.routes[i]?.match;
    const demo = services.find((s) => s.name === canary?.service);
    if (!canary || !demo || !match || match.regex || match.host || match.headers || match.query || match.cohort || match.toggle) continue;
    if (match.methods && !match.methods.includes('GET')) continue;
    const path = match.exact ?? match.path ?? '/';
    const user = NAMES.find((name) => {
      const report = explain(snapshot, { method: 'GET', url: path, user: name });
      return report.route === route.name && report.side === 'canary';
    });
    if (user === undefined) continue;

    const url = `${proxyUrl}${path}`;
    const as = `-H '${header}: ${user}'`;
    const service = `http://${demo.host.includes(':') ? `[${demo.host}]` : demo.host}:${demo.port}`;
    const stable = route.action.kind === 'proxy' ? route.action.service : '';
    const { consecutiveFailures, intervalMs } = canary.analysis;
    const tries = Math.max(6, (consecutiveFailures ?? 0) + 3);
    const auth = snapshot.admin.token !== '' ? `-H "authorization: Bearer $FICUS_ADMIN_TOKEN" ` : '';
    const ejects =
      consecutiveFailures !== undefined
        ? `${Array<string>(consecutiveFailures).fill('500').join(' ')}, then 200: after ${consecutiveFailures} failures in a row ficus ejected ${canary.service}, and ${user} is back on ${stable}`
        : `500s until the next verdict (every ${intervalMs / 1000} s) ejects ${canary.service}; then ${user} is back on ${stable}`;
    return {
      route: route.name,
      canary: canary.service,
      weight: canary.weight,
      steps: [
        { command: `curl ${as} ${url}`, says: `${canary.service} answers: ${user} is among the ${canary.weight} % of users on the canary` },
        { command: `curl -X POST ${service}${FAULT_PATH}`, says: `${canary.service} starts answering 500 (this demo's fault switch)` },
        { command: `for i in $(seq ${tries}); do curl -s -o /dev/null -w '%{http_code} ' ${as} ${url}; done; echo`, says: ejects },
        { command: `npx ficus status --admin ${adminUrl}`, says: `route ${route.name}: canary 0 %, ejected (curl ${adminUrl}/status has the reason and its numbers)` },
        { command: `curl -s ${adminUrl}/metrics | grep -E 'ficus_(canary_weight|ejections_total)'`, says: 'the effective weight, and the ejections by reason' },
        { command: `curl -X DELETE ${service}${FAULT_PATH}; curl -X POST ${auth}${adminUrl}/routes/${route.name}/readmit`, says: `mended and readmitted: ${user} is on ${canary.service} again` },
      ],
    };
  }
  return undefined;
}
