import { request } from 'undici';
import { formatIssue, type ConfigIssue } from '../config/issues.js';

/** The parts of the admin `/status` document this command shows; read defensively. */
interface StatusView {
  ready?: boolean;
  config?: { file?: string; hash?: string; loadedAt?: string; lastReload?: { result?: string; trigger?: string; at?: string; errors?: ConfigIssue[] } };
  routes?: { name: string; match?: string[]; service?: string; migration?: string; canary?: string; weight?: number; state?: string; message?: string; shadow?: string; comparisons?: Record<string, number>; respond?: number }[];
  services?: {
    name: string;
    legacy?: boolean;
    active?: string;
    state?: string;
    endpoints?: { url: string; color?: string; up?: boolean; ejectedUntil?: string; healthCheck?: string; panic?: boolean }[];
  }[];
  toggles?: { name: string; enabled?: boolean; audience?: string; percent?: number; users?: number; cohorts?: string[] }[];
  migration?: { legacyShare?: number | null; requests?: number; windowSeconds?: number };
}

const STATUS_TIMEOUT_MS = 5_000;

/** `ficus status`: the running proxy's /status, for a human or (`--json`) as is. */
export async function status(admin: string, json: boolean): Promise<number> {
  // Under the URL's own path: an admin API reached through `kubectl proxy` or an nginx
  // location lives at PREFIX/status.
  const base = new URL(admin);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const url = new URL('status', base);
  let body: StatusView;
  try {
    // undici's request, not fetch: fetch refuses ports the browsers block (6000, 6666…), where
    // an admin listener may well be.
    const response = await request(url, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
    if (response.statusCode !== 200) {
      await response.body.dump();
      process.stderr.write(`ficus: ${url.href} answered ${response.statusCode}\n`);
      return 1;
    }
    const text = await response.body.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    // Any JSON is not ficus's /status: another service's health endpoint must not read as a ready ficus.
    if (!isStatusView(parsed)) {
      process.stderr.write(`ficus: ${url.href} answered, but not with ficus's /status (is that ficus's admin API?)\n`);
      return 1;
    }
    body = parsed;
  } catch (error) {
    process.stderr.write(`ficus: cannot reach the admin API at ${url.origin} (${unreachable(error)}). Is ficus running? Point at it with --admin URL or $FICUS_ADMIN.\n`);
    return 1;
  }
  process.stdout.write(json ? `${JSON.stringify(body, null, 2)}\n` : renderStatus(url.origin, body));
  return 0;
}

/** The shape this command relies on: an object with `ready` and lists of routes and services. */
function isStatusView(value: unknown): value is StatusView {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.ready === 'boolean' && Array.isArray(v.routes) && Array.isArray(v.services) && (v.config === undefined || (typeof v.config === 'object' && v.config !== null));
}

/** Why the admin API could not be read, in words: a socket's code, or the deadline. */
function unreachable(error: unknown): string {
  // AbortSignal.timeout's DOMException carries the numeric legacy code 23, which says nothing.
  if ((error as { name?: string }).name === 'TimeoutError') return `no answer within ${STATUS_TIMEOUT_MS / 1000} s`;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : (error as Error).message;
}

function renderStatus(origin: string, s: StatusView): string {
  const lines: string[] = [];
  const last = s.config?.lastReload;
  lines.push(`ficus at ${origin}: ${s.ready === false ? 'draining' : 'ready'}`);
  lines.push(`config ${s.config?.hash ?? '?'} from ${s.config?.file ?? '?'}, loaded ${s.config?.loadedAt ?? '?'}`);
  if (last) lines.push(`last reload: ${last.result ?? '?'} (${last.trigger ?? '?'}, ${last.at ?? '?'})`);
  for (const issue of last?.errors ?? []) lines.push(`  ${formatIssue(issue)}`);

  const routes = s.routes ?? [];
  lines.push('', 'routes (first match wins):');
  const routeRows = routes.map((r) => [r.name, (r.match ?? []).join(' · ') || 'everything', r.service !== undefined ? `→ ${r.service}${migrationOf(r)}` : `respond ${r.respond ?? '?'}`]);
  lines.push(...columns(routeRows));

  lines.push('', 'services:');
  const serviceRows = (s.services ?? []).flatMap((service) => {
    const colours = service.active !== undefined ? ` (blue/green, active ${service.active}${service.state && service.state !== 'stable' ? `, ${service.state}` : ''})` : '';
    return (service.endpoints ?? []).map((e, i) => [
      i === 0 ? `${service.name}${service.legacy ? ' (legacy)' : ''}${colours}` : '',
      e.color ? `${e.color}: ${e.url}` : e.url,
      `${endpointState(e)}${e.color && e.color !== service.active ? ' (idle colour)' : ''}`,
    ]);
  });
  lines.push(...columns(serviceRows));

  if (s.toggles && s.toggles.length > 0) {
    lines.push('', 'toggles:');
    lines.push(...columns(s.toggles.map((t) => [t.name, toggleState(t)])));
  }

  const forwarding = routes.filter((r) => r.service !== undefined);
  const moved = forwarding.filter((r) => r.migration === 'new').length;
  lines.push('', `migration: ${moved} of ${forwarding.length} forwarding routes go to new services`);
  const share = s.migration?.legacyShare;
  if (typeof share === 'number') lines.push(`legacy share: ${(share * 100).toFixed(1)} % of ${s.migration?.requests ?? '?'} requests in the last ${s.migration?.windowSeconds ?? '?'} s`);
  return `${lines.join('\n')}\n`;
}

/** Down for either of two reasons, or both: an outlier ejection (until when) and a failing health check. */
function endpointState(e: NonNullable<NonNullable<StatusView['services']>[number]['endpoints']>[number]): string {
  if (e.up !== false) return 'up';
  const reasons = [];
  if (e.ejectedUntil !== undefined) reasons.push(`EJECTED until ${e.ejectedUntil}`);
  if (e.healthCheck === 'failing') reasons.push(e.panic === true ? 'HEALTH CHECK FAILING, serving anyway (panic routing)' : 'HEALTH CHECK FAILING');
  return reasons.length > 0 ? reasons.join(', ') : 'down';
}

function migrationOf(r: NonNullable<StatusView['routes']>[number]): string {
  if (r.migration === 'canary') return ` (canary ${r.weight ?? '?'} % → ${r.canary ?? '?'}${r.state && r.state !== 'running' ? `, ${r.state}${r.message ? `: ${r.message}` : ''}` : ''}${r.shadow ? `; shadow → ${r.shadow}${comparedText(r.comparisons)}` : ''})`;
  if (r.migration === 'shadow') return ` (shadow → ${r.shadow ?? '?'}${comparedText(r.comparisons)})`;
  return r.migration ? ` (${r.migration})` : '';
}

/** `: 97.5 % match of 1200 compared`, or nothing before the first comparison. */
export function comparedText(comparisons: Record<string, number> | undefined): string {
  if (comparisons === undefined) return '';
  const judged = (comparisons.match ?? 0) + (comparisons.mismatch ?? 0);
  if (judged === 0) return '';
  const errors = comparisons.error ? `, ${comparisons.error} error(s)` : '';
  return `: ${(((comparisons.match ?? 0) / judged) * 100).toFixed(1)} % match of ${judged} compared${errors}`;
}

function toggleState(t: NonNullable<StatusView['toggles']>[number]): string {
  if (t.enabled === false) return 'off';
  if (t.audience !== 'some') return 'on';
  const who = [t.percent !== undefined ? `${t.percent} % of users` : '', t.users ? `${t.users} user(s)` : '', ...(t.cohorts ?? []).map((c) => `cohort ${c}`)].filter(Boolean);
  return `on for ${who.join(', ')}`;
}

function columns(rows: readonly string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => `  ${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('   ')}`);
}
