import { isAbsolute, relative } from 'node:path';
import { LineCounter, parseDocument, isNode } from 'yaml';
import type { Snapshot } from '../config/snapshot.js';
import { RequestView } from '../routing/request-view.js';
import { firstMatch } from '../routing/route.js';
import type { Paint } from './console.js';
import { canaryStoryFor } from './canary-examples.js';
import { shadowStoryFor } from './shadow-examples.js';
import { audienceExamplesFor, standIn, switchesFor } from './migration-examples.js';
import { rewrittenPart, type DemoService } from './services.js';

export interface TourInput {
  snapshot: Snapshot;
  /** The routes file's text, for line numbers. */
  text: string;
  cwd: string;
  proxyUrl: string;
  adminUrl: string;
  services: readonly DemoService[];
  /** Services the demo did not start because their URLs are not on this machine. */
  remote: readonly string[];
  style: Paint;
}

export interface Example {
  command: string;
  says: string;
  path: string;
}

export interface Move {
  line: number;
  route: string;
  from: string;
  to: string;
  path: string;
}

export const READY = 'ficus demo is ready';

/**
 * The text a newcomer reads first. Everything in it is derived from the running configuration
 * (a curl per route, checked to really reach that route; the line to edit found in the file),
 * so the tour stays true when routes.yaml is edited and the demo restarted.
 */
export function tour(input: TourInput): string {
  const { style, proxyUrl, adminUrl } = input;
  const file = displayPath(input.snapshot.file, input.cwd);
  const out: string[] = [];
  out.push('', style.bold('ficus demo: a strangler fig in one terminal'), '');
  const rows: [string, string, string][] = input.services.map((s) => [s.name, `http://${hostForUrl(s.host)}:${s.port}`, s.legacy ? 'the legacy monolith (demo)' : 'a new service (demo)']);
  rows.push(['ficus', proxyUrl, `the facade, routing by ${file}`], ['admin', adminUrl, 'status page, /status, /metrics']);
  out.push(...table(rows).map((row) => `  ${row}`));
  if (input.remote.length > 0) out.push(`  ${style.dim(`not started here (not a local address): ${input.remote.join(', ')}`)}`);

  const examples = examplesFor(input.snapshot, proxyUrl);
  if (examples.length > 0) {
    out.push('', 'Try, in another terminal:');
    out.push(...table(examples.map((e) => [e.command, style.dim(e.says)])).map((row) => `  ${row}`));
  }
  out.push('', "The proxy's own view:");
  out.push(
    ...table([
      [`${adminUrl}/`, style.dim('the status page, in a browser')],
      [`curl ${adminUrl}/status`, style.dim('the same, as JSON')],
      [`curl -s ${adminUrl}/metrics | grep ficus_requests_total`, ''],
      [`curl -s ${adminUrl}/metrics | grep ficus_legacy_share`, style.dim("the share of traffic the monolith still serves: the migration's progress")],
    ]).map((row) => `  ${row}`),
  );

  const audience = audienceExamplesFor(input.snapshot, proxyUrl);
  const identity = input.snapshot.identity?.header;
  const firstUser = audience.find((a) => identity !== undefined && a.headers[0]?.[0] === identity);
  if (audience.length > 0) {
    out.push('', `Users, cohorts and colours${identity ? ` (the user is read from the ${identity} header)` : ''}:`);
    const rows = audience.map((a) => [`curl ${a.headers.map(([k, v]) => `-H '${k}: ${v}' `).join('')}${a.url}`, style.dim(a.says)]);
    if (firstUser) {
      const path = new URL(firstUser.url).pathname;
      rows.push([`npx ficus explain GET ${path} -u ${firstUser.headers[0]?.[1] ?? ''} -c ${file}`, style.dim('why: the route, cohorts, toggles, side, colour and endpoints')]);
    }
    out.push(...table(rows).map((row) => `  ${row}`));
  }

  const switches = switchesFor(input.snapshot, proxyUrl);
  if (switches.length > 0) {
    out.push('', style.bold('Flip a switch') + ' (each command edits the file, keeping its comments; the proxy reloads it):');
    out.push(...table(switches.map((s) => [`npx ficus ${s.args.join(' ')} -c ${file}`, 'then', `curl ${s.curl.local ? '-i ' : ''}${s.curl.url}`, style.dim(s.says)])).map((row) => `  ${row}`));
    out.push(`  ${style.dim(`and back: ${switches.map((s) => `npx ficus ${s.undo.join(' ')} -c ${file}`).join(' · ')}`)}`);
  }

  const story = canaryStoryFor(input.snapshot, proxyUrl, adminUrl, input.services);
  if (story) {
    out.push('', `${style.bold('The immune system')}: route ${story.route} sends ${story.weight} % of users to the canary ${story.canary}, and watches it on live traffic:`);
    story.steps.forEach((step, i) => out.push(`  ${i + 1}. ${step.command}`, `     ${style.dim(step.says)}`));
  }

  const shadow = shadowStoryFor(input.snapshot, proxyUrl, adminUrl, input.services);
  if (shadow) {
    out.push('', `${style.bold('In the shadows')}: route ${shadow.route} is served by ${shadow.primary}, and ${shadow.shadow} gets a copy of each request; ficus compares the answers:`);
    out.push(...table(shadow.steps.map((step) => [step.command, style.dim(step.says)])).map((row) => `  ${row}`));
  }

  const move = moveFor(input.snapshot, input.text);
  out.push('', style.bold('Move traffic live, without a restart:'));
  if (move) {
    out.push(
      `  in ${file}, line ${move.line} (route ${move.route}), change   to: ${move.from}   into   to: ${move.to}`,
      `  save, then run   curl ${proxyUrl}${move.path}   again: ${move.to} answers.`,
    );
  } else {
    out.push(`  edit a route's "to:" in ${file} and save; the next request follows it.`);
  }
  out.push(`  ${style.dim('A broken file is refused (the running routes stay) and its errors are printed here.')}`);
  out.push('', `Each request appears below as it passes. ${style.bold('Ctrl-C')} drains and quits.`, '');
  out.push(`${READY}: proxy ${proxyUrl}, admin ${adminUrl}`, '');
  return out.join('\n');
}

/** One curl per route that a plain request can reach, in file order, skipping shadowed ones. */
export function examplesFor(snapshot: Snapshot, proxyUrl: string): Example[] {
  const examples: Example[] = [];
  snapshot.source.routes.forEach((spec, i) => {
    const route = snapshot.routes[i];
    const match = spec.match;
    if (!route || match.regex || match.host || match.headers || match.query || match.cohort || match.toggle) return;
    // Who answers a canary route depends on who asks: the immune-system story shows it.
    if (route.action.kind === 'proxy' && route.action.canary !== undefined) return;
    const path = match.exact ?? match.path ?? '/';
    const method = !match.methods || match.methods.includes('GET') ? 'GET' : (match.methods[0] as string);
    if (firstMatch(snapshot.routes, new RequestView(method, path, '', '127.0.0.1', {})) !== route) return;
    const action = route.action;
    const flags = `${action.kind === 'respond' ? '-i ' : ''}${method === 'GET' ? '' : `-X ${method} `}`;
    let says: string;
    if (action.kind === 'respond') {
      says = `ficus answers ${action.status} itself (route ${route.name})`;
    } else {
      const service = snapshot.services.get(action.service);
      const forwarded = action.rewrite(path);
      const colour = service?.colours ? 'the active colour' : '';
      const what = colour || (service?.legacy ? 'the monolith' : 'the new service');
      says = `${standIn(action.service, service?.colours?.active)} answers, ${what}${forwarded !== path ? `, as ${forwarded}` : ''} (route ${route.name})`;
    }
    examples.push({ command: `curl ${flags}${proxyUrl}${path}`, says, path });
  });
  return examples;
}

/**
 * The edit that shows a migration step: a route named after a new service ("catalog" for
 * "catalog-v2") whose `to:` can be switched to it, or back to the legacy service.
 */
export function moveFor(snapshot: Snapshot, text: string): Move | undefined {
  const services = [...snapshot.services.values()];
  const legacy = services.find((s) => s.legacy);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  for (const route of snapshot.routes) {
    if (route.action.kind !== 'proxy') continue;
    const current = route.action.service;
    const fresh = services.find((s) => !s.legacy && rewrittenPart(s.name) === route.name);
    if (!fresh || !legacy) continue;
    const to = current === fresh.name ? legacy.name : current === legacy.name ? fresh.name : undefined;
    const node = doc.getIn(['routes', route.index, 'to'], true);
    const spec = snapshot.source.routes[route.index];
    if (!to || !isNode(node) || !node.range || !spec) continue;
    return { line: lines.linePos(node.range[0]).line, route: route.name, from: current, to, path: spec.match.exact ?? spec.match.path ?? '/' };
  }
  return undefined;
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visible(cell).length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - visible(cell).length)))
      .join('   ')
      .trimEnd(),
  );
}

const STYLE = new RegExp(`${String.fromCharCode(27)}\\[\\d+m`, 'g');

/** The text as it shows on screen, without terminal styling, for column widths. */
function visible(text: string): string {
  return text.replace(STYLE, '');
}

function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}

/** A listener on every interface is reached, from this machine, on loopback. */
export function reachableUrl(url: string): string {
  return url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
