import type { IncomingHttpHeaders } from 'node:http';
import { inPercent } from './bucket.js';
import { cookieValue, fieldText, type Caller } from './identity.js';
import { headerField } from './request-view.js';

/** A compiled cohort: a union of users, a header value, a cookie value and a percentage. */
export interface CohortDef {
  readonly name: string;
  readonly index: number;
  readonly users: ReadonlySet<string> | undefined;
  readonly header: { readonly name: string; readonly value: string } | undefined;
  readonly cookie: { readonly name: string; readonly value: string } | undefined;
  readonly percent: number | undefined;
  readonly seed: string;
}

/** A compiled toggle: on when enabled and (no audience, or the caller is in any audience). */
export interface ToggleDef {
  readonly name: string;
  readonly index: number;
  readonly enabled: boolean;
  readonly users: ReadonlySet<string> | undefined;
  readonly cohorts: readonly number[] | undefined;
  readonly percent: number | undefined;
  readonly seed: string;
}

export interface AudienceDefs {
  readonly cohorts: readonly CohortDef[];
  readonly toggles: readonly ToggleDef[];
}

const UNKNOWN = 0;
const YES = 1;
const NO = 2;

/**
 * One caller's cohort and toggle answers, computed on first use and kept for the request, so a
 * route condition, the x-ficus-toggles header and explain all see the same answer.
 */
export class Audience {
  /** Cohort answers, then toggle answers: one allocation per request. */
  readonly #answers: Uint8Array;

  constructor(
    readonly defs: AudienceDefs,
    readonly caller: Caller,
    private readonly headers: IncomingHttpHeaders,
  ) {
    this.#answers = new Uint8Array(defs.cohorts.length + defs.toggles.length);
  }

  inCohort(index: number): boolean {
    const known = this.#answers[index];
    if (known !== UNKNOWN) return known === YES;
    const answer = cohortHolds(this.defs.cohorts[index] as CohortDef, this.caller, this.headers);
    this.#answers[index] = answer ? YES : NO;
    return answer;
  }

  toggleOn(index: number): boolean {
    const slot = this.defs.cohorts.length + index;
    const known = this.#answers[slot];
    if (known !== UNKNOWN) return known === YES;
    const answer = this.#toggleHolds(this.defs.toggles[index] as ToggleDef);
    this.#answers[slot] = answer ? YES : NO;
    return answer;
  }

  /** Names of the toggles on for this caller, comma-separated; undefined when none is. */
  togglesHeader(): string | undefined {
    let out: string | undefined;
    for (const toggle of this.defs.toggles) {
      if (this.toggleOn(toggle.index)) out = out === undefined ? toggle.name : `${out},${toggle.name}`;
    }
    return out;
  }

  #toggleHolds(toggle: ToggleDef): boolean {
    if (!toggle.enabled) return false;
    if (toggle.users === undefined && toggle.cohorts === undefined && toggle.percent === undefined) return true;
    if (toggle.users !== undefined && this.caller.known && toggle.users.has(this.caller.id)) return true;
    if (toggle.cohorts !== undefined && toggle.cohorts.some((index) => this.inCohort(index))) return true;
    return toggle.percent !== undefined && inPercent(toggle.seed, this.caller.id, toggle.percent);
  }
}

function cohortHolds(cohort: CohortDef, caller: Caller, headers: IncomingHttpHeaders): boolean {
  if (cohort.users !== undefined && caller.known && cohort.users.has(caller.id)) return true;
  if (cohort.header !== undefined) {
    const value = headerField(headers, cohort.header.name);
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined && fieldText(first) === cohort.header.value) return true;
  }
  if (cohort.cookie !== undefined && headers.cookie !== undefined) {
    // Compared as text, as the identity cookie and cohort headers are: a browser sends UTF-8.
    const value = cookieValue(headers.cookie, cohort.cookie.name);
    if (value !== undefined && fieldText(value) === cohort.cookie.value) return true;
  }
  return cohort.percent !== undefined && inPercent(cohort.seed, caller.id, cohort.percent);
}
