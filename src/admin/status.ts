import type { ConfigStore } from '../config/store.js';
import type { Clock } from '../observe/clock.js';

/** The `/status` document: what is running, how it got there, and the health of every endpoint. */
export function statusDocument(store: ConfigStore, clock: Clock, ready: boolean) {
  const { snapshot, services } = store.current;
  const last = store.lastReload;
  const now = clock.now();
  return {
    ready,
    config: {
      file: snapshot.file,
      hash: snapshot.hash,
      loadedAt: snapshot.loadedAt.toISOString(),
      lastReload: {
        at: last.at.toISOString(),
        trigger: last.trigger,
        result: last.result,
        hashBefore: last.hashBefore,
        hashAfter: last.hashAfter,
        errors: last.issues.map((i) => ({ file: i.file, line: i.line, col: i.col, path: i.path, message: i.message })),
      },
    },
    routes: snapshot.routes.map((route) => ({
      name: route.name,
      match: route.conditions.map((c) => c.describe),
      ...(route.action.kind === 'proxy'
        ? { service: route.action.service, migration: services.get(route.action.service)?.def.legacy ? 'legacy' : 'new' }
        : { respond: route.action.status }),
    })),
    services: [...services.values()].map((service) => ({
      name: service.def.name,
      legacy: service.def.legacy,
      balance: service.def.balance,
      endpoints: service.endpoints.map((e) => ({
        url: e.origin + e.def.basePath,
        up: e.ejectedUntil <= now,
        inflight: e.inflight,
        consecutiveFailures: e.consecutiveFailures,
        timesEjected: e.timesEjected,
        ...(e.ejectedUntil > now ? { ejectedUntil: new Date(e.ejectedUntil).toISOString() } : {}),
      })),
    })),
  };
}

/** The effective configuration with every secret replaced, for `/config`. */
export function redactedConfig(store: ConfigStore): unknown {
  const source = structuredClone(store.current.snapshot.source) as Record<string, unknown> & { admin: { token: string } };
  if (source.admin.token) source.admin.token = '<redacted>';
  return redactDeep(source);
}

const SECRET_KEY = /token|secret|passw(or)?d|authorization|api[-_]?key|credential|private/i;

function redactDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      out[key] = SECRET_KEY.test(key) && typeof inner === 'string' && inner !== '' ? '<redacted>' : redactDeep(inner);
    }
    return out;
  }
  return value;
}
