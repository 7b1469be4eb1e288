import type { RunningApp } from '../../src/app.js';

type Labels = Record<string, string | number>;

/** The samples of one metric of a running proxy, read from its registry rather than a scrape. */
export async function samples(app: RunningApp, name: string): Promise<{ labels: Labels; value: number }[]> {
  return ((await app.metrics.registry.getSingleMetric(name)?.get())?.values ?? []) as { labels: Labels; value: number }[];
}

/** The sum of the samples whose labels include all of `labels`. */
export async function metricSum(app: RunningApp, name: string, labels: Labels = {}): Promise<number> {
  const wanted = Object.entries(labels);
  return (await samples(app, name)).filter((s) => wanted.every(([key, value]) => s.labels[key] === value)).reduce((sum, s) => sum + s.value, 0);
}

/** Sums by the value of one label (or of the first of several that a sample has). */
export async function metricBy(app: RunningApp, name: string, ...label: string[]): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  for (const { labels, value } of await samples(app, name)) {
    const key = label.map((l) => labels[l]).find((v) => v !== undefined);
    sums[String(key)] = (sums[String(key)] ?? 0) + value;
  }
  return sums;
}
