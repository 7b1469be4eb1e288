import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { matchesSecret, secretDigest } from '../config/secret.js';
import { isLoopbackAddress } from '../proxy/cidr.js';
import type { ConfigStore, ReloadReport } from '../config/store.js';
import type { Clock } from '../observe/clock.js';
import type { Guards } from '../rollout/guards.js';
import type { Metrics } from '../observe/metrics.js';
import { liveColour } from '../upstream/bluegreen.js';
import { endpointState, explainQuery } from './explain.js';
import { statusPage } from './page.js';
import { canaryStatus, redactedConfig, statusDocument, type Shadows } from './status.js';

export interface AdminDeps {
  store: ConfigStore;
  metrics: Metrics;
  clock: Clock;
  isReady: () => boolean;
  reload: (trigger: 'admin') => Promise<ReloadReport>;
  guards?: Guards;
  shadows?: Shadows;
  /** Resolves when the newest state-file save has ended: an operator's decision is answered once it would survive a crash. */
  persisted?: () => Promise<unknown>;
}

/**
 * The admin listener (SPEC §3), separate from the edge. GETs are open (they reveal no secrets);
 * with `admin.token` set, every POST needs `Authorization: Bearer <token>`.
 */
export function createAdminServer(deps: AdminDeps): Server {
  return createServer((req, res) => {
    handle(deps, req, res).catch((error: unknown) => {
      if (res.headersSent) res.destroy();
      else json(res, 500, { error: error instanceof Error ? error.message : String(error) });
    });
  });
}

async function handle(deps: AdminDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const target = req.url ?? '/';
  let url: URL;
  try {
    // Origin-form only, read as a path: `//host/status` names no host and is no /status.
    if (!target.startsWith('/')) throw new TypeError('not origin-form');
    url = new URL(`http://admin${target}`);
  } catch {
    return json(res, 400, { error: 'bad request target' });
  }
  // A web page the operator happens to open must not drive the admin API: without a token, a
  // cross-site form POST would eject or readmit a canary, and a name rebound to 127.0.0.1 would
  // read /status and /config (as kubectl proxy and Node's inspector refuse, by Host).
  if (reboundHost(req)) return json(res, 421, { error: 'this admin listener answers to a loopback address or localhost, not to that Host' });
  if (req.method !== 'GET' && req.method !== 'HEAD' && crossSite(req)) return json(res, 403, { error: 'cross-site request refused' });
  // Node leaves the body out of a HEAD response: a HEAD is answered as its GET, as a load
  // balancer's probe expects.
  const route = `${req.method === 'HEAD' ? 'GET' : req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /healthz':
      return json(res, 200, { status: 'ok' });
    case 'GET /readyz':
      return deps.isReady() ? json(res, 200, { status: 'ready' }) : json(res, 503, { status: 'draining' });
    case 'GET /metrics': {
      deps.metrics.publishConfig(deps.store.current.snapshot);
      // Written as it is made; the head goes with the first part, so a failure before it is a 500.
      for await (const part of deps.metrics.exposition()) {
        if (res.destroyed) return;
        if (!res.headersSent) res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
        res.write(part);
      }
      res.end();
      // Exported once more above; the series of routes and services no longer configured go now.
      await deps.metrics.dropStale(deps.store.current.snapshot);
      return;
    }
    case 'GET /status':
      return json(res, 200, statusDocument(deps.store, deps.clock, deps.isReady(), deps.metrics.forwarded.read(), deps.guards, deps.shadows));
    case 'GET /config':
      return json(res, 200, redactedConfig(deps.store));
    case 'GET /explain': {
      const generation = deps.store.current;
      const answer = explainQuery(generation.snapshot, url.searchParams, {
        weights: generation.canaries,
        colour: (service, colours) => liveColour(colours, deps.guards?.get(service)),
        endpoint: (service, colour, origin) => endpointState(generation, service, colour, origin, deps.clock.now()),
      });
      return json(res, answer.ok ? 200 : 400, answer.ok ? answer.report : { error: answer.error });
    }
    case 'GET /': {
      const body = statusPage(statusDocument(deps.store, deps.clock, deps.isReady(), deps.metrics.forwarded.read(), deps.guards, deps.shadows));
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    case 'POST /reload': {
      if (!authorized(deps.store.current.snapshot.admin.token, req)) return unauthorized(res);
      const report = await deps.reload('admin');
      return json(res, report.result === 'failure' ? 422 : 200, report);
    }
  }
  if (req.method === 'POST' && !authorized(deps.store.current.snapshot.admin.token, req)) return unauthorized(res);
  if (READ_PATHS.has(url.pathname)) return methodNotAllowed(res, 'GET, HEAD');
  const canaryAction = CANARY_ACTION.exec(url.pathname);
  if (canaryAction) {
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
    return canaryCommand(deps, canaryAction[1] as string, canaryAction[2] as 'eject' | 'readmit', res);
  }
  if (url.pathname === '/reload') return methodNotAllowed(res, 'POST');
  return json(res, 404, { error: 'not found' });
}

const READ_PATHS = new Set(['/', '/healthz', '/readyz', '/metrics', '/status', '/config', '/explain']);

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  json(res, 405, { error: 'method not allowed' });
}

/** The longest an operator's eject or readmit waits for the disk before it is answered anyway. */
const PERSIST_WAIT_MS = 2_000;

const CANARY_ACTION = /^\/routes\/([^/]+)\/(eject|readmit)$/;

/**
 * `POST /routes/{name}/eject` and `/readmit`: an operator's word on a canary, announced like the
 * analysis's own decisions. Repeating one changes nothing and says so (`changed: false`).
 */
async function canaryCommand(deps: AdminDeps, name: string, action: 'eject' | 'readmit', res: ServerResponse): Promise<void> {
  const { snapshot, canaries } = deps.store.current;
  const route = snapshot.routes.find((r) => r.name === name);
  const canary = route === undefined ? undefined : canaries[route.index];
  if (canary === undefined) {
    return json(res, 404, { error: route === undefined ? `no route named "${name}"` : `route "${name}" has no canary` });
  }
  const changed = action === 'eject' ? canary.eject('admin') : canary.readmit('admin');
  // A hung disk must not hold the answer: the save is logged when it fails either way.
  if (changed && deps.persisted) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([deps.persisted(), new Promise((resolve) => (timer = setTimeout(resolve, PERSIST_WAIT_MS)))]);
    clearTimeout(timer);
  }
  json(res, 200, { route: name, changed, ...canaryStatus(canary) });
}

/** A browser request made by a page of another origin: Sec-Fetch-Site says so, or Origin differs from Host. */
function crossSite(req: IncomingMessage): boolean {
  // A browser that says where the request comes from is believed: behind a proxy that rewrites
  // Host, Origin and Host differ for a same-origin page too.
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) return site !== 'same-origin' && site !== 'none';
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== (req.headers.host ?? '').toLowerCase();
  } catch {
    return true; // `Origin: null` (a sandboxed page, a redirect across origins)
  }
}

/**
 * On a loopback listener, a Host that is neither an IP address nor localhost is a DNS name the
 * browser resolved to 127.0.0.1 for some other site (DNS rebinding).
 */
function reboundHost(req: IncomingMessage): boolean {
  // The listener's own address, not the connection's: a wildcard listener reached over 127.0.0.1
  // (a host name mapped to 127.0.1.1, a scraper on the same machine) is no loopback listener.
  const bound = (req.socket as { server?: { address(): unknown } }).server?.address() as { address?: string } | null | undefined;
  if (!isLoopbackAddress(bound?.address ?? '')) return false;
  const host = (req.headers.host ?? '').toLowerCase();
  if (host === '') return false;
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '');
  return name !== 'localhost' && isIP(name) === 0;
}

function authorized(token: string, req: IncomingMessage): boolean {
  if (token === '') return true;
  return matchesSecret(bearerToken(req.headers.authorization ?? ''), secretDigest(token));
}

/**
 * The credentials of `Bearer <token>`; the scheme name is case-insensitive (RFC 9110 §11.1).
 * Read without a backtracking pattern: the header is anyone's to write, up to 16 KiB, and
 * `/^bearer +(.*?) *$/` took quadratic time on a long run of inner spaces.
 */
export function bearerToken(header: string): string {
  const scheme = /^bearer +/i.exec(header);
  if (scheme === null) return '';
  let end = header.length;
  while (end > scheme[0].length && header.charCodeAt(end - 1) === 0x20) end--;
  return header.slice(scheme[0].length, end);
}

function unauthorized(res: ServerResponse): void {
  res.setHeader('www-authenticate', 'Bearer');
  json(res, 401, { error: 'unauthorized' });
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
