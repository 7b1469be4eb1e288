import { comparedText } from './status-command.js';
import type { statusDocument } from './status.js';

type Status = ReturnType<typeof statusDocument>;

const escape = (text: unknown) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/** The migration cell, already escaped: an ejected or promoted canary is marked up. */
function stage(route: Status['routes'][number]): string {
  if (!('migration' in route)) return '';
  if (route.migration === 'canary') {
    const state = route.state === 'ejected' ? ' · <b class="bad">ejected</b>' : route.state === 'promoted' ? ' · <b>promoted</b>' : '';
    const why = 'reason' in route || route.state === 'promoted' ? `: ${escape('message' in route ? route.message : '')}` : '';
    const shadow = 'shadow' in route && route.shadow ? `<br>${escape(`shadow → ${route.shadow}${comparedText((route as { comparisons?: Record<string, number> }).comparisons)}`)}` : '';
    return `${escape(`canary ${route.weight ?? '?'} % → ${route.canary ?? '?'}`)}${state}${why}${shadow}`;
  }
  if (route.migration === 'shadow') return escape(`shadow → ${route.shadow ?? '?'}${comparedText((route as { comparisons?: Record<string, number> }).comparisons)}`);
  return escape(route.migration ?? '');
}

/** A blue/green pair's guard state, already escaped: a cutover being watched, or rolled back and why. */
function colourState(service: Status['services'][number]): string {
  const guard = service as { state?: string; guardingUntil?: string; message?: string };
  if (guard.state === 'guarding') return `<br>guarding until ${escape(guard.guardingUntil ?? '?')}`;
  if (guard.state === 'rolled-back') return `<br><b class="bad">rolled back</b>: ${escape(guard.message ?? '')}`;
  return '';
}

/** A small, dependency-free status page for humans; `/status` is the same data as JSON. */
export function statusPage(status: Status): string {
  const last = status.config.lastReload;
  const routes = status.routes
    .map((r) => `<tr><td>${escape(r.name)}</td><td>${escape(r.match.join(' · '))}</td><td>${escape('service' in r ? r.service : `respond ${r.respond}`)}</td><td>${stage(r)}</td></tr>`)
    .join('');
  const services = status.services
    .map((s) => {
      const active = 'active' in s ? s.active : undefined;
      const endpoints = s.endpoints.map((e) => {
        const colour = 'color' in e ? `${e.color === active ? `<b>${escape(e.color)} (active)</b>` : escape(e.color)}: ` : '';
        return `${colour}<span class="${e.up ? 'up' : 'down'}">${escape(e.url)}</span>`;
      });
      return `<tr><td>${escape(s.name)}${colourState(s)}</td><td>${endpoints.join('<br>')}</td><td>${s.legacy ? 'legacy' : 'new'}</td></tr>`;
    })
    .join('');
  const toggles = status.toggles
    .map((t) => `<tr><td>${escape(t.name)}</td><td>${t.enabled ? 'enabled' : '<b class="bad">off</b>'}</td><td>${escape(t.audience === 'some' ? `${t.percent !== undefined ? `${t.percent} %` : ''} ${t.cohorts?.join(', ') ?? ''}`.trim() || 'listed users' : t.audience)}</td></tr>`)
    .join('');
  const share = status.migration.legacyShare;
  const errors = last.errors.map((e) => `<li><code>${escape(`${e.file}:${e.line}:${e.col} ${e.path}: ${e.message}`)}</code></li>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>ficus</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.up{color:#176b2c}.down{color:#b00020;font-weight:bold}.bad{color:#b00020}code{font-size:13px}</style></head><body>
<h1>ficus</h1>
<p>config <code>${escape(status.config.hash)}</code> loaded ${escape(status.config.loadedAt)} · ${status.ready ? 'ready' : '<b class="bad">draining</b>'}</p>
<p>last reload: ${escape(last.result)} (${escape(last.trigger)}, ${escape(last.at)})</p>${errors ? `<ul class="bad">${errors}</ul>` : ''}
<p>legacy share: ${share === null ? 'no traffic' : `${escape((share * 100).toFixed(1))} %`} of forwarded requests in the last ${escape(status.migration.windowSeconds / 60)} min</p>
<h2>Routes</h2><table><tr><th>route</th><th>match</th><th>to</th><th>migration</th></tr>${routes}</table>
${toggles ? `<h2>Toggles</h2><table><tr><th>toggle</th><th></th><th>on for</th></tr>${toggles}</table>` : ''}
<h2>Services</h2><table><tr><th>service</th><th>endpoints</th><th></th></tr>${services}</table>
<p><a href="/status">/status</a> · <a href="/metrics">/metrics</a> · <a href="/config">/config</a></p></body></html>`;
}
