import { describe, expect, test } from 'vitest';
import { judge, type Thresholds } from '../../../src/rollout/analysis.js';
import { SlidingWindow, type WindowStats } from '../../../src/rollout/windows.js';

/** SPEC §1.4: a pure verdict of (windows, thresholds), each threshold judged only when given. */

const stats = (requests: number, failures: number, p99Ms = 10): WindowStats => ({ requests, failures, errorRate: requests === 0 ? 0 : failures / requests, p99Ms });

const only = (given: Partial<Thresholds>): Thresholds => ({
  minRequests: 20,
  maxErrorRate: undefined,
  maxP99Ms: undefined,
  maxErrorRateVsStable: undefined,
  maxP99VsStable: undefined,
  ...given,
});

describe('judge', () => {
  test.each([
    // Too little evidence: neither ejection on noise nor promotion without evidence.
    { name: 'below minRequests, even all failing', canary: stats(19, 19), stable: undefined, t: only({ maxErrorRate: 0.05 }), outcome: 'inconclusive', reason: undefined, message: '19 requests < minRequests 20' },
    { name: 'no thresholds at all, enough requests', canary: stats(20, 20, 9_000), stable: undefined, t: only({}), outcome: 'healthy', reason: undefined, message: 'error rate 1, p99 9000ms over 20 requests' },
    // Absolute thresholds.
    { name: 'error rate above maxErrorRate', canary: stats(50, 6), stable: undefined, t: only({ maxErrorRate: 0.1 }), outcome: 'failing', reason: 'error_rate', message: 'error rate 0.12 > 0.1 over 50 requests' },
    { name: 'error rate at maxErrorRate is not above it', canary: stats(50, 5), stable: undefined, t: only({ maxErrorRate: 0.1 }), outcome: 'healthy', reason: undefined, message: 'error rate 0.1, p99 10ms over 50 requests' },
    { name: 'p99 above maxP99', canary: stats(40, 0, 976.5625), stable: undefined, t: only({ maxP99Ms: 800 }), outcome: 'failing', reason: 'p99', message: 'p99 976.563ms > 800ms over 40 requests' },
    { name: 'p99 at maxP99', canary: stats(40, 0, 800), stable: undefined, t: only({ maxP99Ms: 800 }), outcome: 'healthy', reason: undefined, message: 'error rate 0, p99 800ms over 40 requests' },
    { name: 'a slow canary is not judged on p99 without maxP99', canary: stats(40, 0, 60_000), stable: undefined, t: only({ maxErrorRate: 0.1 }), outcome: 'healthy', reason: undefined, message: 'error rate 0, p99 60000ms over 40 requests' },
    { name: 'an erroring canary is not judged on errors without maxErrorRate', canary: stats(40, 40), stable: undefined, t: only({ maxP99Ms: 100 }), outcome: 'healthy', reason: undefined, message: 'error rate 1, p99 10ms over 40 requests' },
    { name: 'the error rate is judged before p99', canary: stats(40, 40, 9_000), stable: undefined, t: only({ maxErrorRate: 0.1, maxP99Ms: 100 }), outcome: 'failing', reason: 'error_rate', message: 'error rate 1 > 0.1 over 40 requests' },
    // Against the stable side.
    { name: 'error rate 3× the stable side’s, 2× allowed', canary: stats(100, 6), stable: stats(100, 2), t: only({ maxErrorRateVsStable: 2 }), outcome: 'failing', reason: 'vs_stable', message: "error rate 0.06 is 3× stable's 0.02 > 2× over 100 requests" },
    { name: 'error rate 2× the stable side’s, 2× allowed', canary: stats(100, 4), stable: stats(100, 2), t: only({ maxErrorRateVsStable: 2 }), outcome: 'healthy', reason: undefined, message: 'error rate 0.04, p99 10ms over 100 requests' },
    // A perfect stable side would make one canary error infinitely worse: it counts as one failure in its requests.
    { name: 'a perfect stable side is compared as if it had one failure', canary: stats(100, 1), stable: stats(100, 0), t: only({ maxErrorRateVsStable: 2 }), outcome: 'healthy', reason: undefined, message: 'error rate 0.01, p99 10ms over 100 requests' },
    { name: 'against a perfect stable side, many failures still fail', canary: stats(100, 5), stable: stats(100, 0), t: only({ maxErrorRateVsStable: 2 }), outcome: 'failing', reason: 'vs_stable', message: "error rate 0.05 is 5× stable's 0 > 2× over 100 requests" },
    { name: 'p99 twice the stable side’s, 1.5× allowed', canary: stats(50, 0, 200), stable: stats(50, 0, 100), t: only({ maxP99VsStable: 1.5 }), outcome: 'failing', reason: 'vs_stable', message: "p99 200ms is 2× stable's 100ms > 1.5× over 50 requests" },
    { name: 'p99 1.5× the stable side’s, 1.5× allowed', canary: stats(50, 0, 150), stable: stats(50, 0, 100), t: only({ maxP99VsStable: 1.5 }), outcome: 'healthy', reason: undefined, message: 'error rate 0, p99 150ms over 50 requests' },
    // The stable side needs its own evidence before it is a yardstick.
    { name: 'only relative thresholds, stable side too quiet', canary: stats(50, 50), stable: stats(5, 0), t: only({ maxErrorRateVsStable: 2 }), outcome: 'inconclusive', reason: undefined, message: 'stable side has 5 requests < minRequests 20' },
    { name: 'only relative thresholds, no stable window', canary: stats(50, 50), stable: undefined, t: only({ maxP99VsStable: 2 }), outcome: 'inconclusive', reason: undefined, message: 'stable side has 0 requests < minRequests 20' },
    { name: 'absolute thresholds still judge while the stable side is quiet', canary: stats(50, 1), stable: stats(5, 0), t: only({ maxErrorRate: 0.05, maxErrorRateVsStable: 2 }), outcome: 'healthy', reason: undefined, message: 'error rate 0.02, p99 10ms over 50 requests' },
    // Numbers that cannot be computed.
    { name: 'an error rate that is not a number', canary: { requests: 50, failures: 0, errorRate: Number.NaN, p99Ms: 1 }, stable: undefined, t: only({ maxErrorRate: 0.1 }), outcome: 'error', reason: undefined, message: 'canary window could not be measured' },
    { name: 'an infinite p99', canary: { requests: 50, failures: 0, errorRate: 0, p99Ms: Infinity }, stable: undefined, t: only({}), outcome: 'error', reason: undefined, message: 'canary window could not be measured' },
  ] as const)('$name → $outcome', ({ canary, stable, t, outcome, reason, message }) => {
    expect(judge(canary, stable, t)).toEqual({ outcome, reason, message });
  });
});

describe('judge on real windows, driven by a fake clock', () => {
  function fakeClock() {
    let now = 0;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  }

  test('a burst of failures fails the verdict, and once it has slid out of the window the canary is healthy again', () => {
    const clock = fakeClock();
    const canary = new SlidingWindow(2_000, clock);
    const t = only({ maxErrorRate: 0.1 });
    for (let i = 0; i < 30; i++) canary.record(i < 10, 5);
    expect(judge(canary.stats(), undefined, t)).toMatchObject({ outcome: 'failing', reason: 'error_rate' });
    clock.advance(1_500);
    for (let i = 0; i < 30; i++) canary.record(false, 5);
    expect(judge(canary.stats(), undefined, t)).toMatchObject({ outcome: 'failing', message: 'error rate 0.167 > 0.1 over 60 requests' });
    clock.advance(600);
    expect(judge(canary.stats(), undefined, t)).toEqual({ outcome: 'healthy', reason: undefined, message: 'error rate 0, p99 5.821ms over 30 requests' });
    clock.advance(2_000);
    expect(judge(canary.stats(), undefined, t).outcome).toBe('inconclusive');
  });
});
