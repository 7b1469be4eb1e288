/** Time and chance, injected so routing, rollout and health can be tested without sleeping. */
export interface Clock {
  now(): number;
}
export type Random = () => number;

export const systemClock: Clock = { now: () => Date.now() };
export const systemRandom: Random = Math.random;
