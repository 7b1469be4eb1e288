import type { IncomingHttpHeaders } from 'node:http';
import type { Snapshot } from '../config/snapshot.js';
import type { EffectiveWeights } from '../routing/decide.js';
import { addHeaderLine, explain, type ExplainReport, type LiveColour } from '../explain/explain.js';

export type ExplainAnswer = { ok: true; report: ExplainReport } | { ok: false; error: string };

const METHOD = /^[A-Za-z]+$/;

/**
 * `GET /explain?method=GET&url=/catalog&user=alice&header=x-beta:%201`: the same report as
 * `ficus explain`, against the snapshot serving right now and its canaries' effective weights.
 * `header` may be repeated.
 */
export function explainQuery(snapshot: Snapshot, query: URLSearchParams, live?: EffectiveWeights, liveColour?: LiveColour): ExplainAnswer {
  const url = query.get('url');
  if (url === null || url === '') return { ok: false, error: 'give the request to explain: /explain?method=GET&url=/path&user=ID' };
  const method = query.get('method') || 'GET';
  if (!METHOD.test(method)) return { ok: false, error: `"${method}" is not an HTTP method` };
  const headers: IncomingHttpHeaders = {};
  for (const line of query.getAll('header')) {
    if (!addHeaderLine(headers, line)) return { ok: false, error: `header takes "name: value", not "${line}"` };
  }
  const user = query.get('user');
  return { ok: true, report: explain(snapshot, { method, url, user: user === null || user === '' ? undefined : user, headers }, undefined, live, liveColour) };
}
