import type { WindowStats } from './windows.js';

/** What a canary (or a freshly cut-over colour) is judged against; each threshold only when given. */
export interface Thresholds {
  readonly minRequests: number;
  readonly maxErrorRate: number | undefined;
  readonly maxP99Ms: number | undefined;
  readonly maxErrorRateVsStable: number | undefined;
  readonly maxP99VsStable: number | undefined;
}

export type Outcome = 'healthy' | 'failing' | 'inconclusive' | 'error';
/** Why a window fails its thresholds; every reason a state file may hold derives from this list. */
export const FAIL_REASONS = ['error_rate', 'p99', 'vs_stable'] as const;
export type FailReason = (typeof FAIL_REASONS)[number];

export interface Verdict {
  readonly outcome: Outcome;
  /** Set when failing: which threshold was breached first. */
  readonly reason: FailReason | undefined;
  /** The decision with its numbers, e.g. "error rate 0.12 > 0.05 over 50 requests". */
  readonly message: string;
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/**
 * The verdict, after Argo Rollouts' analysis: a pure function of the windows and thresholds
 * with four outcomes. Too little canary traffic is inconclusive (no promotion without
 * evidence, no ejection on noise); comparisons with the stable side are skipped while the stable
 * side has too little traffic of its own; numbers that cannot be computed are an error.
 */
export function judge(canary: WindowStats, stable: WindowStats | undefined, t: Thresholds): Verdict {
  if (!Number.isFinite(canary.errorRate) || !Number.isFinite(canary.p99Ms)) {
    return { outcome: 'error', reason: undefined, message: 'canary window could not be measured' };
  }
  if (canary.requests < t.minRequests) {
    return { outcome: 'inconclusive', reason: undefined, message: `${canary.requests} requests < minRequests ${t.minRequests}` };
  }
  const over = ` over ${canary.requests} requests`;
  if (t.maxErrorRate !== undefined && canary.errorRate > t.maxErrorRate) {
    return { outcome: 'failing', reason: 'error_rate', message: `error rate ${round(canary.errorRate)} > ${t.maxErrorRate}${over}` };
  }
  if (t.maxP99Ms !== undefined && canary.p99Ms > t.maxP99Ms) {
    return { outcome: 'failing', reason: 'p99', message: `p99 ${round(canary.p99Ms)}ms > ${t.maxP99Ms}ms${over}` };
  }
  const comparable = stable !== undefined && stable.requests >= t.minRequests;
  if (comparable && t.maxErrorRateVsStable !== undefined) {
    // A perfect stable side would make any canary error infinitely worse: compare against a floor.
    const base = Math.max(stable.errorRate, 1 / Math.max(stable.requests, 1));
    const ratio = canary.errorRate / base;
    if (ratio > t.maxErrorRateVsStable) {
      return { outcome: 'failing', reason: 'vs_stable', message: `error rate ${round(canary.errorRate)} is ${round(ratio)}× stable's ${round(stable.errorRate)} > ${t.maxErrorRateVsStable}×${over}` };
    }
  }
  if (comparable && t.maxP99VsStable !== undefined && stable.p99Ms > 0) {
    const ratio = canary.p99Ms / stable.p99Ms;
    if (ratio > t.maxP99VsStable) {
      return { outcome: 'failing', reason: 'vs_stable', message: `p99 ${round(canary.p99Ms)}ms is ${round(ratio)}× stable's ${round(stable.p99Ms)}ms > ${t.maxP99VsStable}×${over}` };
    }
  }
  const onlyRelative = t.maxErrorRate === undefined && t.maxP99Ms === undefined;
  if (onlyRelative && !comparable && (t.maxErrorRateVsStable !== undefined || t.maxP99VsStable !== undefined)) {
    return { outcome: 'inconclusive', reason: undefined, message: `stable side has ${stable?.requests ?? 0} requests < minRequests ${t.minRequests}` };
  }
  return {
    outcome: 'healthy',
    reason: undefined,
    message: `error rate ${round(canary.errorRate)}, p99 ${round(canary.p99Ms)}ms${over}`,
  };
}
