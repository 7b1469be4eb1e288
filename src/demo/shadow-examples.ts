import type { Snapshot } from '../config/snapshot.js';
import { explain } from '../explain/explain.js';
import type { CanaryStep } from './canary-examples.js';
import { INVOICE_EXAMPLES } from './invoices.js';
import { rewrittenPart, SERVED_BY, type DemoService } from './services.js';

/*
 * The tour's shadow story: the monolith keeps answering while its rewrite gets a copy of every
 * request, and ficus reports where the two disagree. Told only when the file has a route whose
 * copies go to the demo's rewrite of invoices, compared, and every plain GET is copied: then
 * the demo's data makes one invoice agree and the other not, whatever else the file says.
 */

export interface ShadowStory {
  route: string;
  shadow: string;
  primary: string;
  steps: CanaryStep[];
}

export function shadowStoryFor(snapshot: Snapshot, proxyUrl: string, adminUrl: string, services: readonly DemoService[]): ShadowStory | undefined {
  for (const route of snapshot.routes) {
    const action = route.action;
    const shadow = action.kind === 'proxy' ? action.shadow : undefined;
    if (action.kind !== 'proxy' || shadow === undefined || action.canary !== undefined) continue;
    const rewrite = services.find((s) => s.name === shadow.service && !s.legacy && rewrittenPart(s.name) === 'invoices');
    const primary = snapshot.services.get(action.service);
    if (!rewrite || !primary?.legacy || primary.colours || !shadow.compare || shadow.percent < 100 || !shadow.ignoreHeaders.has(SERVED_BY)) continue;
    const paths = [INVOICE_EXAMPLES.same, INVOICE_EXAMPLES.different].map((id) => `/invoices/${id}`);
    const copied = paths.every((url) => {
      const report = explain(snapshot, { method: 'GET', url });
      return report.route === route.name && action.rewrite(url) === url && report.shadow?.copied === true;
    });
    if (!copied) continue;
    const [same = '', different = ''] = paths;
    return {
      route: route.name,
      shadow: shadow.service,
      primary: primary.name,
      steps: [
        { command: `curl ${proxyUrl}${same}`, says: `${primary.name} answers; ${shadow.service} answered the copy alike: a match, counted and not logged` },
        { command: `curl ${proxyUrl}${different}`, says: `${primary.name} answers, unchanged; ${shadow.service} disagrees on $.status: a "≠ shadow" line below says where (one per route every 10 s)` },
        { command: `curl -s ${adminUrl}/metrics | grep ficus_shadow_comparisons_total`, says: 'matches and mismatches per route: the evidence for moving the route' },
      ],
    };
  }
  return undefined;
}
