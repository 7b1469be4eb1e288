import { compile } from '../config/compile.js';
import type { RoutesFile } from '../config/schema.js';
import type { Snapshot } from '../config/snapshot.js';
import { explain, type ExplainReport } from '../explain/explain.js';

/*
 * The tour's migration examples: who asks changes the answer (a cohort, a preview door), and
 * what the CLI's switches do (a kill switch, a cutover). Every example is explained against
 * the file, as it is or as it will be after the edit, before the tour prints it.
 */

/** A curl whose answer depends on who asks: a cohort member, a preview token. */
export interface AudienceExample {
  headers: [string, string][];
  url: string;
  says: string;
}

/** An edit made with the CLI, and the curl that shows its effect once the proxy has reloaded. */
export interface Switch {
  args: string[];
  undo: string[];
  curl: { url: string; local: boolean };
  says: string;
}

/** The demo's stand-in for a service, or for one colour of a blue/green service. */
export function standIn(service: string, colour: string | undefined): string {
  return colour === undefined ? service : `${service}-${colour}`;
}

/** Who answers, as the demo's stand-ins name themselves: a service, a colour, or ficus. */
function answerer(report: ExplainReport): string {
  if (report.respond !== undefined) return `ficus answers ${report.respond} itself`;
  return `${standIn(report.service ?? '?', report.color)} answers`;
}

/** A plain GET that reaches the route by its path alone, for the examples below. */
function pathOf(snapshot: Snapshot, index: number): string | undefined {
  const match = snapshot.source.routes[index]?.match;
  if (!match || match.regex || match.host || match.headers || match.query || (match.methods && !match.methods.includes('GET'))) return undefined;
  return match.exact ?? match.path ?? '/';
}

/**
 * One curl per cohort route (as a listed user, through the identity header) and per preview
 * door (with its token). Each is run through explain first, and kept only when it reaches what
 * it claims, so the tour cannot promise what the proxy will not do.
 */
export function audienceExamplesFor(snapshot: Snapshot, proxyUrl: string): AudienceExample[] {
  const examples: AudienceExample[] = [];
  const header = snapshot.identity?.header;
  snapshot.routes.forEach((route, i) => {
    const path = pathOf(snapshot, i);
    const cohortName = snapshot.source.routes[i]?.match.cohort;
    if (path === undefined) return;
    if (header !== undefined && cohortName !== undefined && !cohortName.startsWith('!')) {
      const user = snapshot.source.cohorts?.[cohortName]?.users?.[0];
      const report = user === undefined ? undefined : explain(snapshot, { method: 'GET', url: path, user });
      if (user !== undefined && report?.route === route.name) {
        examples.push({ headers: [[header, user]], url: `${proxyUrl}${path}`, says: `${answerer(report)}: ${user} is in cohort ${cohortName} (route ${route.name})` });
      }
    }
    const service = route.action.kind === 'proxy' ? snapshot.services.get(route.action.service) : undefined;
    const preview = service?.colours?.preview;
    if (preview !== undefined && preview.token !== '' && snapshot.source.routes[i]?.match.cohort === undefined && snapshot.source.routes[i]?.match.toggle === undefined) {
      const report = explain(snapshot, { method: 'GET', url: path, headers: { [preview.header]: preview.token } });
      if (report.route === route.name && report.preview === true) {
        examples.push({ headers: [[preview.header, preview.token]], url: `${proxyUrl}${path}`, says: `${answerer(report)}: the preview token opens the inactive colour (route ${route.name})` });
      }
    }
  });
  return examples;
}

/**
 * The two switches of a migration, as the CLI flips them: a kill-switch toggle (a respond
 * route behind `toggle: "!name"`) turned off, and a blue/green cutover. Each effect is checked
 * by explaining the request against the file as it will be after the edit.
 */
export function switchesFor(snapshot: Snapshot, proxyUrl: string): Switch[] {
  const switches: Switch[] = [];
  const source = snapshot.source;
  snapshot.routes.forEach((route, i) => {
    const path = pathOf(snapshot, i);
    const toggle = source.routes[i]?.match.toggle;
    if (path === undefined || route.action.kind !== 'respond' || !toggle?.startsWith('!')) return;
    const name = toggle.slice(1);
    const spec = source.toggles?.[name];
    if (!spec || spec.enabled === false || switches.some((s) => s.args[1] === name)) return;
    const after = explain(recompiled(snapshot, { ...source, toggles: { ...source.toggles, [name]: { ...spec, enabled: false } } }), { method: 'GET', url: path });
    if (after.route !== route.name) return;
    switches.push({ args: ['toggle', name, 'off'], undo: ['toggle', name, 'on'], curl: { url: `${proxyUrl}${path}`, local: true }, says: `${answerer(after)} (route ${route.name})` });
  });
  snapshot.routes.forEach((route, i) => {
    const path = pathOf(snapshot, i);
    if (path === undefined || route.action.kind !== 'proxy' || source.routes[i]?.match.cohort || source.routes[i]?.match.toggle) return;
    const name = route.action.service;
    const spec = source.services[name];
    if (!spec?.active || switches.some((s) => s.args[0] === 'cutover' && s.args[1] === name)) return;
    const next = spec.active === 'blue' ? 'green' : 'blue';
    const after = explain(recompiled(snapshot, { ...source, services: { ...source.services, [name]: { ...spec, active: next } } }), { method: 'GET', url: path });
    if (after.route !== route.name || after.color !== next) return;
    switches.push({ args: ['cutover', name, next], undo: ['cutover', name, spec.active], curl: { url: `${proxyUrl}${path}`, local: false }, says: `${answerer(after)} (route ${route.name})` });
  });
  return switches;
}

function recompiled(snapshot: Snapshot, source: RoutesFile): Snapshot {
  return compile(source, snapshot.file, snapshot.hash);
}
