import { z } from 'zod';
import { FAIL_REASONS } from './analysis.js';

const ColourField = z.enum(['blue', 'green']);
const Stats = z.strictObject({ requests: z.number(), failures: z.number(), errorRate: z.number(), p99Ms: z.number() });
const StateSchema = z.strictObject({
  fingerprint: z.string(),
  state: z.enum(['stable', 'guarding', 'rolled-back']),
  configured: ColourField,
  active: ColourField,
  fallback: ColourField.nullable(),
  since: z.number(),
  until: z.number().nullable(),
  reason: z.enum([...FAIL_REASONS, 'consecutive_failures']).nullable(),
  message: z.string().nullable(),
  baseline: Stats.nullable(),
});

/** A guard's decisions as plain data: what the state file keeps across a restart. */
export type GuardState = z.infer<typeof StateSchema>;

/**
 * A saved record for the guard whose definition has `fingerprint` (any, when not given), or
 * undefined when it is malformed, stale (written for another definition) or inconsistent.
 */
export function parseGuardState(saved: unknown, fingerprint?: string): GuardState | undefined {
  const parsed = StateSchema.safeParse(saved);
  if (!parsed.success || (fingerprint !== undefined && parsed.data.fingerprint !== fingerprint) || !consistent(parsed.data)) return undefined;
  return parsed.data;
}

/** A record that could have come from `toJSON`: anything else is ignored rather than obeyed. */
function consistent(s: GuardState): boolean {
  switch (s.state) {
    case 'stable':
      return s.active === s.configured && s.fallback === null;
    case 'guarding':
      return s.active === s.configured && s.fallback !== null && s.fallback !== s.active && s.until !== null;
    case 'rolled-back':
      return s.active !== s.configured && s.fallback === null && s.reason !== null;
  }
}
