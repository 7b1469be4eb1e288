import type { MatchSpec } from '../config/schema.js';
import type { Condition } from './match.js';

export interface AudienceIndex {
  cohort(name: string): number;
  toggle(name: string): number;
}

/**
 * `match.cohort` and `match.toggle` (each a name or `!name`). They run last: the cheaper
 * request-only conditions rule most routes out before any bucketing is done.
 */
export function compileAudienceMatch(spec: MatchSpec, index: AudienceIndex): Condition[] {
  const conditions: Condition[] = [];
  if (spec.cohort !== undefined) {
    const negated = spec.cohort.startsWith('!');
    const name = negated ? spec.cohort.slice(1) : spec.cohort;
    const at = index.cohort(name);
    conditions.push({
      key: 'cohort',
      describe: negated ? `caller not in cohort ${name}` : `caller in cohort ${name}`,
      test: (r) => (r.audience?.inCohort(at) ?? false) !== negated,
    });
  }
  if (spec.toggle !== undefined) {
    const negated = spec.toggle.startsWith('!');
    const name = negated ? spec.toggle.slice(1) : spec.toggle;
    const at = index.toggle(name);
    conditions.push({
      key: 'toggle',
      describe: negated ? `toggle ${name} off for caller` : `toggle ${name} on for caller`,
      test: (r) => (r.audience?.toggleOn(at) ?? false) !== negated,
    });
  }
  return conditions;
}
