import type { RouteDef, ServiceDef, Snapshot } from '../config/snapshot.js';
import type { ShareReading } from '../observe/share-window.js';
import type { CanaryState } from '../rollout/canary.js';

/**
 * Where a route stands in the migration: still on a `legacy` service, moved to a `new` one,
 * split between the two by a `canary`, or served by legacy while a `shadow` copy tries the new.
 */
export type Migration = 'legacy' | 'new' | 'canary' | 'shadow';

export interface RouteLedger {
  migration: Migration;
  /** For a canary: the service taking `weight` % (effective: 0 while ejected) of users, and the split's state. */
  canary?: string;
  weight?: number;
  state?: CanaryState;
  shadow?: string;
}

/**
 * A canary or shadow says more about progress than the service's own flag, so it wins. `live`
 * is the canary's runtime state; without it (offline) the file's weight is shown, running.
 */
export function routeLedger(route: RouteDef, snapshot: Snapshot, live?: { readonly state: CanaryState; readonly weight: number }): RouteLedger | undefined {
  const action = route.action;
  if (action.kind !== 'proxy') return undefined;
  if (action.canary !== undefined) {
    const shadow = action.shadow === undefined ? {} : { shadow: action.shadow.service };
    return { migration: 'canary', canary: action.canary.service, weight: live?.weight ?? action.canary.weight, state: live?.state ?? 'running', ...shadow };
  }
  if (action.shadow !== undefined) return { migration: 'shadow', shadow: action.shadow.service };
  return { migration: isLegacy(snapshot.services.get(action.service)) ? 'legacy' : 'new' };
}

function isLegacy(service: ServiceDef | undefined): boolean {
  return service?.legacy ?? false;
}

export interface MigrationSummary {
  /** Forwarded requests served by legacy services in the window; null with no traffic. */
  legacyShare: number | null;
  windowSeconds: number;
  requests: number;
  legacyRequests: number;
  /** How many forwarding routes stand at each stage. */
  routes: Record<Migration, number>;
}

export function migrationSummary(snapshot: Snapshot, share: ShareReading | undefined): MigrationSummary {
  const routes: Record<Migration, number> = { legacy: 0, new: 0, canary: 0, shadow: 0 };
  for (const route of snapshot.routes) {
    const ledger = routeLedger(route, snapshot);
    if (ledger) routes[ledger.migration]++;
  }
  return {
    legacyShare: share === undefined || Number.isNaN(share.share) ? null : share.share,
    windowSeconds: (share?.windowMs ?? 0) / 1000,
    requests: share?.requests ?? 0,
    legacyRequests: share?.legacy ?? 0,
    routes,
  };
}

export interface ToggleLedger {
  name: string;
  enabled: boolean;
  /** `everyone` when enabled with no audience; otherwise who it is on for. */
  audience: 'everyone' | 'some' | 'nobody';
  percent?: number;
  users?: number;
  cohorts?: string[];
}

export function toggleLedger(snapshot: Snapshot): ToggleLedger[] {
  const cohorts = snapshot.audience.cohorts;
  return snapshot.audience.toggles.map((toggle) => {
    const some = toggle.users !== undefined || toggle.cohorts !== undefined || toggle.percent !== undefined;
    return {
      name: toggle.name,
      enabled: toggle.enabled,
      audience: !toggle.enabled ? 'nobody' : some ? 'some' : 'everyone',
      ...(toggle.percent !== undefined ? { percent: toggle.percent } : {}),
      // A count, not the ids: /status is open to anyone who can reach the admin port.
      ...(toggle.users !== undefined ? { users: toggle.users.size } : {}),
      ...(toggle.cohorts !== undefined ? { cohorts: toggle.cohorts.map((i) => cohorts[i]?.name ?? '?') } : {}),
    };
  });
}
