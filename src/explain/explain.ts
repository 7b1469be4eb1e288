import { randomUUID } from 'node:crypto';
import { METHODS, type IncomingHttpHeaders } from 'node:http';
import type { Colour, ColoursDef, EndpointDef, ServiceDef, Snapshot } from '../config/snapshot.js';
import { Audience } from '../routing/audience.js';
import { bucketOf, inPercent } from '../routing/bucket.js';
import { effectiveWeight, explainDecision, REFUSED_METHODS, type EffectiveWeights } from '../routing/decide.js';
import { identify, type Caller } from '../routing/identity.js';
import { HOST_VALUE, normalizeTarget } from '../routing/normalize.js';
import { sameRouteWithoutParameters } from '../routing/route.js';
import { hostName, RequestView } from '../routing/request-view.js';
import { chooseColour } from '../upstream/bluegreen.js';
import { believedHeaders, forwardingField } from '../proxy/headers.js';

/** A request to explain: what a client would send, and optionally who it is. */
export interface ExplainRequest {
  method: string;
  /** A path with its query (`/search?q=x`) or an absolute http URL, as a client would send it. */
  url: string;
  /** The user id, as if sent where `identity` reads it; without it the caller is anonymous. */
  user?: string | undefined;
  /** Lower-case names. */
  headers?: IncomingHttpHeaders;
}

export interface BucketLine {
  /** What the percentage belongs to: `cohort early`, `toggle new-checkout`, `canary search`. */
  of: string;
  seed: string;
  bucket: number;
  percent: number;
  inside: boolean;
}

/**
 * Why a request goes where it goes. Field names are the `key: value` lines `ficus explain`
 * prints; absent fields do not apply (no `color` for a plain service, no `service` for respond).
 */
export interface ExplainReport {
  request: string;
  host: string;
  user: string;
  cohorts: string[];
  toggles: string[];
  buckets: BucketLine[];
  skipped: { route: string; needs: string }[];
  route: string | null;
  respond?: number;
  service?: string;
  side?: 'stable' | 'canary';
  color?: 'blue' | 'green';
  preview?: boolean;
  endpoints?: string[];
  forward?: string;
  /** The route's shadow, and whether a request like this one is among those it may copy. */
  shadow?: { service: string; percent: number; compare: boolean; copied: boolean };
  notes: string[];
}

/** The colour a blue/green service serves live traffic on right now (a guard may have rolled it back). */
export type LiveColour = (service: string, colours: ColoursDef) => Colour;

/** The methods Node's parser (llhttp) reads; any other request line gets 400 at the edge. */
const PARSED_METHODS: ReadonlySet<string> = new Set(METHODS);

/**
 * Why the balancer passes an endpoint over right now: `ejected` by outlier detection, `down`
 * by its health checks; undefined when it is in service.
 */
export type LiveEndpoint = (service: string, colour: Colour | undefined, origin: string) => 'ejected' | 'down' | undefined;

/** What the running proxy knows beyond the file, for `GET /explain`; offline explain has none. */
export interface LiveState {
  weights?: EffectiveWeights;
  colour?: LiveColour;
  endpoint?: LiveEndpoint;
}

/**
 * Runs the proxy's own decision (`explainDecision`, the function the handler calls) on a
 * request that is never sent, and says why at each step. Offline and live explain both come
 * here, so neither can disagree with where the proxy really sends the request.
 */
export function explain(snapshot: Snapshot, request: ExplainRequest, newId: () => string = randomUUID, live: LiveState = {}): ExplainReport {
  const method = request.method.toUpperCase();
  const notes: string[] = [];
  const sent = withUser(snapshot, { ...request.headers }, request.user, notes);
  // The proxy believes Forwarded and X-Forwarded-* only from a peer in trustedProxies (plan.ts);
  // explain has no peer: without trustedProxies no peer can send them, so they are dropped here too.
  const told = Object.keys(sent).filter(forwardingField);
  const trusting = (snapshot.source.trustedProxies ?? []).length > 0;
  const headers = told.length === 0 || trusting ? sent : believedHeaders(sent);
  if (told.length > 0) {
    notes.push(
      trusting
        ? `${told.join(', ')}: read as sent by a trusted proxy; from a peer outside trustedProxies the proxy ignores it`
        : `${told.join(', ')}: ignored, as the proxy ignores it from every peer (the file has no trustedProxies)`,
    );
  }
  const report: ExplainReport = { request: `${method} ${request.url}`, host: '', user: '', cohorts: [], toggles: [], buckets: [], skipped: [], route: null, notes };

  // Node's parser (llhttp) knows a fixed list of methods and answers any other with 400.
  if (!PARSED_METHODS.has(method)) {
    report.respond = 400;
    notes.push(`ficus's HTTP parser refuses the method ${method} (it knows ${METHODS.join(', ')}): 400 before any route is looked for`);
    return report;
  }
  if (REFUSED_METHODS.has(method)) {
    report.respond = 405;
    notes.push(`ficus refuses ${method} before routing: it is no forward proxy, and TRACE would echo credentials back`);
    return report;
  }
  // The edge refuses these before routing (proxy/server.ts hostIsSound): several Host lines are
  // joined here, which no host[:port] holds.
  if (typeof headers.host === 'string' && !HOST_VALUE.test(headers.host)) {
    report.respond = 400;
    notes.push('ficus refuses a request whose Host is not one host[:port] (or that carries several Host lines)');
    return report;
  }
  const target = normalizeTarget(request.url);
  if (!target.ok) {
    report.respond = 400;
    notes.push(`ficus refuses this request target: ${target.reason}`);
    return report;
  }
  const host = hostName(target.host ?? (typeof headers.host === 'string' ? headers.host : ''));
  report.host = host;
  if (target.host !== undefined) headers.host = target.host;
  const view = new RequestView(method, target.path, target.query, host, headers);

  // The caller is always described; the audience is built under the handler's own rule, so a
  // file that uses no caller routes here exactly as it does in the proxy.
  const caller = identify(snapshot.identity, headers, false, newId);
  report.user = describeCaller(snapshot, headers, caller);
  const randomDraw = !caller.known && (snapshot.identity?.anonymousCookie === undefined || caller.setCookie !== undefined);
  if (snapshot.usesCaller) {
    view.audience = new Audience(snapshot.audience, caller, headers);
  }

  const decision = explainDecision(snapshot, view, live.weights);
  report.skipped = decision.trace.skipped.map((s) => ({ route: s.route, needs: s.failed }));
  const audience = view.audience;
  if (audience !== undefined) {
    report.cohorts = snapshot.audience.cohorts.filter((c) => audience.inCohort(c.index)).map((c) => c.name);
    report.toggles = snapshot.audience.toggles.filter((t) => audience.toggleOn(t.index)).map((t) => t.name);
    for (const c of snapshot.audience.cohorts) if (c.percent !== undefined) report.buckets.push(bucketLine(`cohort ${c.name}`, c.seed, caller.id, c.percent));
    for (const t of snapshot.audience.toggles) if (t.percent !== undefined) report.buckets.push(bucketLine(`toggle ${t.name}`, t.seed, caller.id, t.percent));
  }

  const route = decision.route;
  if (!sameRouteWithoutParameters(snapshot.routeIndex, view, route)) {
    report.respond = 400;
    report.route = null;
    notes.push('ficus refuses this path: without its ;parameters, as a servlet container reads it, it would match another route');
    return report;
  }
  if (route?.action.kind === 'proxy' && route.action.canary !== undefined && audience !== undefined) {
    const canary = route.action.canary;
    // Live explain splits as the proxy does right now: at the canary's effective weight.
    const weight = effectiveWeight(route, live.weights) ?? canary.weight;
    report.buckets.push(bucketLine(`canary ${route.name} → ${canary.service}`, canary.seed, caller.id, weight));
    if (weight !== canary.weight) notes.push(`canary ${route.name} runs at ${weight} % right now (the file says ${canary.weight} %): ejected, or on a step of its rollout`);
  }
  if (randomDraw && report.buckets.length > 0) notes.push(randomDrawNote(snapshot));
  if (route === undefined) {
    report.respond = 404;
    notes.push('no route matched: ficus answers 404 itself');
    return report;
  }
  report.route = route.name;
  const action = route.action;
  if (action.kind === 'respond') {
    report.respond = action.status;
    return report;
  }
  report.service = decision.service as string;
  report.side = decision.side;
  const service = snapshot.services.get(report.service) as ServiceDef;
  let endpoints = service.endpoints;
  if (service.colours !== undefined) {
    const active = live.colour?.(report.service, service.colours) ?? service.colours.active;
    if (active !== service.colours.active) notes.push(`${report.service} was rolled back by its guard: live traffic is on ${active}, though the file says ${service.colours.active}`);
    const chosen = chooseColour(service.colours, headers, active);
    report.color = chosen.colour;
    report.preview = chosen.preview;
    endpoints = service.colours[chosen.colour].endpoints;
    if (chosen.preview) notes.push(`preview: the ${service.colours.preview?.header ?? ''} header carries the right token, so the inactive colour answers`);
  }
  const passedOver = endpoints.map((e) => live.endpoint?.(report.service as string, report.color, e.origin));
  report.endpoints = endpoints.map((e, i) => (passedOver[i] === undefined ? endpointUrl(e) : `${endpointUrl(e)} (${passedOver[i]})`));
  if (passedOver.some((state) => state !== undefined)) {
    notes.push(passedOver.every((state) => state !== undefined) ? 'endpoints: none is in service right now, so ficus answers 503' : 'endpoints: those marked ejected or down are passed over by the balancer right now');
  }
  // The service URL's path goes in front, as the proxy puts it; endpoints that differ in it
  // each put their own.
  const bases = new Set(endpoints.map((e) => e.basePath));
  const base = bases.size === 1 ? (endpoints[0]?.basePath ?? '') : '';
  report.forward = `${method} ${base}${action.rewrite(target.path)}${target.query}`;
  if (bases.size > 1) notes.push("forward: each endpoint puts its own URL path in front (as listed under endpoints)");
  const shadow = action.shadow;
  if (shadow !== undefined) {
    // Which requests are copied is drawn per request: explain can only say whether this one may be.
    const copied = shadow.methods.has(method);
    report.shadow = { service: shadow.service, percent: shadow.percent, compare: shadow.compare, copied };
    if (!copied) notes.push(`shadow: ${method} is never copied to ${shadow.service} (only ${[...shadow.methods].join(', ')})`);
  }
  return report;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
/** Fields of which Node keeps only the first when a request repeats them (`IncomingMessage.headers`). */
const FIRST_ONLY = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent']);

/**
 * Adds `name: value` (as curl's -H takes it) to `headers`; a repeated header combines as a
 * client's would. Returns false when the text is not a header line.
 */
export function addHeaderLine(headers: IncomingHttpHeaders, line: string): boolean {
  const colon = line.indexOf(':');
  const name = colon === -1 ? '' : line.slice(0, colon).trim().toLowerCase();
  if (!HEADER_NAME.test(name)) return false;
  const value = line.slice(colon + 1).trim();
  const before = headers[name];
  // The proxy reads these as Node gives them: the first line only (a second Host is refused below).
  if (typeof before === 'string' && FIRST_ONLY.has(name)) return true;
  headers[name] = typeof before === 'string' ? `${before}${name === 'cookie' ? '; ' : ', '}${value}` : value;
  return true;
}

/** `-u alice` stands for the header (or cookie) that `identity` reads, as a client would send it. */
function withUser(snapshot: Snapshot, headers: IncomingHttpHeaders, user: string | undefined, notes: string[]): IncomingHttpHeaders {
  if (user === undefined) return headers;
  const identity = snapshot.identity;
  if (identity?.header !== undefined) {
    headers[identity.header] = user;
  } else if (identity?.cookie !== undefined) {
    const cookie = `${identity.cookie}=${user}`;
    headers.cookie = typeof headers.cookie === 'string' && headers.cookie !== '' ? `${cookie}; ${headers.cookie}` : cookie;
  } else {
    notes.push('the file has no identity.header or identity.cookie, so the proxy cannot know the user: the user given is ignored');
  }
  return headers;
}

function describeCaller(snapshot: Snapshot, headers: IncomingHttpHeaders, caller: Caller): string {
  const identity = snapshot.identity;
  if (caller.known) {
    const viaHeader = identity?.header !== undefined && headers[identity.header] !== undefined && headers[identity.header] !== '';
    return `${caller.id} (${viaHeader ? `header ${identity?.header}` : `cookie ${identity?.cookie}`})`;
  }
  if (identity?.anonymousCookie !== undefined && caller.setCookie === undefined) {
    return `anonymous, sticky id ${caller.id} (cookie ${identity.anonymousCookie})`;
  }
  const where = [identity?.header && `header ${identity.header}`, identity?.cookie && `cookie ${identity.cookie}`].filter(Boolean).join(' or ');
  return `anonymous (no ${where || 'identity configured'})`;
}

/** A fresh random id decides this caller's percentages: the buckets shown are one draw of many. */
function randomDrawNote(snapshot: Snapshot): string {
  return snapshot.identity?.anonymousCookie !== undefined
    ? `an anonymous caller gets a random id, then kept in cookie ${snapshot.identity.anonymousCookie}: the buckets shown are one such draw`
    : 'an anonymous caller is bucketed by a random draw per request: the buckets shown are one such draw';
}

function bucketLine(of: string, seed: string, user: string, percent: number): BucketLine {
  return { of, seed, bucket: bucketOf(seed, user), percent, inside: inPercent(seed, user, percent) };
}

function endpointUrl(endpoint: EndpointDef): string {
  return endpoint.origin + endpoint.basePath;
}
