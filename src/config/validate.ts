import { isIP } from 'node:net';
import { parseCidr } from '../proxy/cidr.js';
import { normalizePath } from '../routing/normalize.js';
import type { RoutesFile, ServiceSpec } from './schema.js';

export interface CrossProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Capabilities the file format names but this build does not enforce yet. Accepting them
 * silently would route traffic other than the operator asked, so they are errors until built.
 */
const NOT_YET = 'is not supported by this version of ficus yet';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Checks that hold across keys: references resolve, names are unique, patterns compile. */
export function crossCheck(file: RoutesFile): CrossProblem[] {
  const problems: CrossProblem[] = [];
  const problem = (path: (string | number)[], message: string) => problems.push({ path, message });
  const services = new Set(Object.keys(file.services));

  if (!LOOPBACK.has(file.admin.host) && !file.admin.host.startsWith('127.') && file.admin.token === '') {
    problem(['admin', 'host'], `admin listener on non-loopback host ${file.admin.host} needs admin.token`);
  }
  for (const [name, service] of Object.entries(file.services)) checkService(name, service, problem);

  for (const key of ['identity', 'cohorts', 'toggles', 'auditLog', 'stateFile'] as const) {
    if (file[key] !== undefined) problem([key], `${key} ${NOT_YET}`);
  }
  (file.trustedProxies ?? []).forEach((cidr, i) => {
    if (!parseCidr(cidr)) problem(['trustedProxies', i], `"${cidr}" is not an IP address or CIDR such as 10.0.0.0/8`);
  });

  const seen = new Map<string, number>();
  file.routes.forEach((route, i) => {
    const at = (...rest: (string | number)[]) => ['routes', i, ...rest];
    const earlier = seen.get(route.name);
    if (earlier !== undefined) problem(at('name'), `duplicate route name "${route.name}" (also routes.${earlier})`);
    seen.set(route.name, i);

    if ((route.to === undefined) === (route.respond === undefined)) {
      problem(at(), 'a route needs exactly one of "to" or "respond"');
    }
    if (route.to !== undefined && !services.has(route.to)) problem(at('to'), `unknown service "${route.to}"`);
    if (route.respond !== undefined && route.rewrite !== undefined) problem(at('rewrite'), 'a "respond" route forwards nothing to rewrite');
    if (route.canary !== undefined) problem(at('canary'), `canary ${NOT_YET}`);
    if (route.shadow !== undefined) problem(at('shadow'), `shadow ${NOT_YET}`);
    if (route.match.cohort !== undefined) problem(at('match', 'cohort'), `match.cohort ${NOT_YET}`);
    if (route.match.toggle !== undefined) problem(at('match', 'toggle'), `match.toggle ${NOT_YET}`);

    for (const key of ['path', 'exact'] as const) {
      const value = route.match[key];
      if (value !== undefined) checkPath(value, at('match', key), problem);
    }
    for (const key of ['stripPrefix', 'addPrefix'] as const) {
      const value = route.rewrite?.[key];
      if (value !== undefined) checkPath(value, at('rewrite', key), problem);
    }
    if (route.match.regex !== undefined) checkRegex(route.match.regex, at('match', 'regex'), problem);
    for (const [name, condition] of Object.entries(route.match.headers ?? {})) {
      if (typeof condition !== 'string') checkRegex(condition.regex, at('match', 'headers', name, 'regex'), problem);
    }
    const host = route.match.host;
    if (host !== undefined && !/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(host) && isIP(host) === 0) {
      problem(at('match', 'host'), `"${host}" is not a host name or *.domain pattern`);
    }
  });
  return problems;
}

function checkService(name: string, service: ServiceSpec, problem: (path: (string | number)[], message: string) => void): void {
  const at = (...rest: string[]) => ['services', name, ...rest];
  const colours = service.blue !== undefined || service.green !== undefined || service.active !== undefined;
  const direct = (service.url !== undefined ? 1 : 0) + (service.urls !== undefined ? 1 : 0);
  if (colours) {
    problem(at(), `blue/green services ${NOT_YET}`);
  } else if (direct !== 1) {
    problem(at(), 'a service needs exactly one of "url", "urls" or "blue"+"green"+"active"');
  }
  for (const key of ['preview', 'guard', 'health'] as const) {
    if (service[key] !== undefined) problem(at(key), `${key} ${NOT_YET}`);
  }
}

function checkPath(value: string, path: (string | number)[], problem: (path: (string | number)[], message: string) => void): void {
  const normalized = normalizePath(value);
  if (typeof normalized !== 'string') problem(path, `"${value}": ${normalized.reason}`);
  else if (normalized !== value) problem(path, `"${value}" is not a normalized path (write "${normalized}")`);
}

function checkRegex(source: string, path: (string | number)[], problem: (path: (string | number)[], message: string) => void): void {
  try {
    new RegExp(source);
  } catch (error) {
    problem(path, `invalid regular expression: ${(error as Error).message}`);
  }
}
