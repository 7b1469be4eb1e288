const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** The longest delay Node's timers take (2^31-1 ms); beyond it they fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `250ms`, `10s`, `5m`, `1h` → milliseconds. The schema has already checked the shape. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!match) throw new RangeError(`not a duration: ${text}`);
  return Math.round(Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]);
}

export function durationOr(text: string | undefined, fallbackMs: number): number {
  return text === undefined ? fallbackMs : parseDuration(text);
}
