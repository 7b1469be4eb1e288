import type { AudienceDefs, CohortDef, ToggleDef } from '../routing/audience.js';
import type { AudienceIndex } from '../routing/audience-match.js';
import type { IdentityDef } from '../routing/identity.js';
import type { RoutesFile } from './schema.js';

/** Who the caller is: the header or cookie that carries a user id. */
export function compileIdentity(source: RoutesFile): IdentityDef | undefined {
  const identity = source.identity;
  if (!identity) return undefined;
  return { header: identity.header?.toLowerCase(), cookie: identity.cookie, anonymousCookie: identity.anonymousCookie };
}

/** Cohorts and toggles in file order; routes and toggles refer to them by index. */
export function compileAudience(source: RoutesFile): AudienceDefs {
  const cohortNames = Object.keys(source.cohorts ?? {});
  const cohorts: CohortDef[] = Object.entries(source.cohorts ?? {}).map(([name, spec], index) => ({
    name,
    index,
    users: spec.users ? new Set(spec.users) : undefined,
    header: spec.header ? { name: spec.header.name.toLowerCase(), value: spec.header.value } : undefined,
    cookie: spec.cookie,
    percent: spec.percent,
    seed: spec.seed ?? name,
  }));
  const toggles: ToggleDef[] = Object.entries(source.toggles ?? {}).map(([name, spec], index) => ({
    name,
    index,
    enabled: spec.enabled ?? true,
    users: spec.users ? new Set(spec.users) : undefined,
    cohorts: spec.cohorts?.map((cohort) => cohortNames.indexOf(cohort)),
    percent: spec.percent,
    seed: spec.seed ?? name,
  }));
  return { cohorts, toggles };
}

/** Route conditions name cohorts and toggles; the compiled conditions hold their indexes. */
export function audienceIndex(audience: AudienceDefs): AudienceIndex {
  const find = (list: readonly { name: string }[], kind: string) => (name: string) => {
    const at = list.findIndex((item) => item.name === name);
    if (at === -1) throw new Error(`unvalidated ${kind} reference ${name}`);
    return at;
  };
  return { cohort: find(audience.cohorts, 'cohort'), toggle: find(audience.toggles, 'toggle') };
}
