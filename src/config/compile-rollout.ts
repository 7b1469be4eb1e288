import { DEFAULTS } from './defaults.js';
import { durationOr, parseDuration } from './duration.js';
import type { AnalysisSpec, RouteSpec } from './schema.js';
import type { AnalysisDef, CanaryDef, GuardDef } from './snapshot.js';

/** A route's `canary` block, its analysis with the defaults filled in. */
export function compileCanary(spec: RouteSpec): CanaryDef | undefined {
  const canary = spec.canary;
  if (canary === undefined) return undefined;
  return {
    service: canary.to,
    weight: canary.weight,
    seed: canary.seed ?? spec.name,
    steps: canary.steps,
    stepIntervalMs: canary.stepInterval === undefined ? undefined : parseDuration(canary.stepInterval),
    analysis: compileAnalysis(canary.analysis),
    fingerprint: JSON.stringify([spec.name, canary]),
  };
}

/**
 * Longest span one guard verdict looks back over. A 30-minute guard judged over 30 minutes
 * would let 29 good minutes hide a breakage in the last one.
 */
const MAX_GUARD_ANALYSIS_MS = 60_000;
/** A zero interval (validation refuses it) must not spin the guard's loop. */
const MIN_GUARD_INTERVAL_MS = 10;

export function guardDef(spec: AnalysisSpec): GuardDef {
  // The same keys and defaults as a canary's `analysis` (SPEC §1.1): one compiler for both.
  const analysis = compileAnalysis(spec);
  return {
    ...analysis,
    intervalMs: Math.max(MIN_GUARD_INTERVAL_MS, analysis.intervalMs),
    analysisWindowMs: Math.max(1, Math.min(analysis.windowMs, MAX_GUARD_ANALYSIS_MS)),
  };
}

/** `analysis` (or a blue/green `guard`, which takes the same keys) with the defaults of SPEC §1.0. */
export function compileAnalysis(spec: AnalysisSpec | undefined): AnalysisDef {
  return {
    intervalMs: durationOr(spec?.interval, DEFAULTS.analysisIntervalMs),
    windowMs: durationOr(spec?.window, DEFAULTS.analysisWindowMs),
    thresholds: {
      minRequests: spec?.minRequests ?? DEFAULTS.minRequests,
      maxErrorRate: spec?.maxErrorRate,
      maxP99Ms: spec?.maxP99 === undefined ? undefined : parseDuration(spec.maxP99),
      maxErrorRateVsStable: spec?.maxErrorRateVsStable,
      maxP99VsStable: spec?.maxP99VsStable,
    },
    consecutiveFailures: spec?.consecutiveFailures,
  };
}
