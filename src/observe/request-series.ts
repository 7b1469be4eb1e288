/** The labels of `ficus_requests_total` (plus `code`) and `ficus_request_duration_seconds`. */
export interface SeriesLabels {
  readonly route: string;
  readonly service: string;
  readonly color: string;
  readonly side: string;
}

interface Series {
  readonly labels: SeriesLabels;
  /** The labels as the text exposition writes them, made at the series' first scrape. */
  text?: string;
  /** `count` when the last streamed exposition wrote the series' counts: a later request is not exported yet. */
  exported?: number;
  /** Requests by status code. */
  readonly codes: Map<number, number>;
  /** Observations per upper bound, not cumulative; the last slot is above every bound. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

/** One exported sample, in the shape prom-client's registry prints. */
export interface Sample {
  value: number;
  metricName: string;
  labels: Record<string, string | number>;
  sharedLabels: SeriesLabels;
}

/**
 * Request counts and durations per (route, service, colour, side), kept in plain numbers.
 * prom-client's inc() and observe() validate and hash the label set again on every call (~1 µs
 * a request for the two); here the hot path finds its series with four Map lookups and only adds
 * numbers, and the metrics read the series when /metrics is scraped (see metrics.ts).
 */
export class RequestSeries {
  readonly #series: Series[] = [];
  /**
   * route → service → color → side: label values are the compiled configuration's own strings,
   * whose hashes V8 keeps, so finding a series builds no key string per request.
   */
  readonly #index = new Map<string, Map<string, Map<string, Map<string, Series>>>>();

  constructor(readonly bounds: readonly number[]) {}

  record(route: string, service: string, color: string, side: string, status: number, seconds: number): void {
    const byService = child(this.#index, route);
    const byColor = child(byService, service);
    const bySide = child(byColor, color);
    let s = bySide.get(side);
    if (s === undefined) {
      s = { labels: { route, service, color, side }, codes: new Map(), buckets: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
      bySide.set(side, s);
      this.#series.push(s);
    }
    s.codes.set(status, (s.codes.get(status) ?? 0) + 1);
    const bounds = this.bounds;
    let i = 0;
    // `le` is inclusive, as in prom-client: a value equal to a bound is counted in its bucket.
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    (s.buckets[i] as number)++;
    s.sum += seconds;
    s.count++;
  }

  /** Request counts: labels, the code as exported ("000" for no response) and the count. */
  *counts(): Generator<[SeriesLabels, string, number]> {
    for (const s of this.#series) for (const [status, n] of s.codes) yield [s.labels, status === 0 ? '000' : String(status), n];
  }

  /** Histogram samples as prom-client's own Histogram exports them: cumulative buckets, +Inf, sum, count. */
  histogram(name: string): Sample[] {
    const samples: Sample[] = [];
    for (const s of this.#series) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.buckets[i] as number;
        samples.push({ value: cumulative, metricName: `${name}_bucket`, labels: { le }, sharedLabels: s.labels });
      });
      samples.push(
        { value: s.count, metricName: `${name}_bucket`, labels: { le: '+Inf' }, sharedLabels: s.labels },
        { value: s.sum, metricName: `${name}_sum`, labels: {}, sharedLabels: s.labels },
        { value: s.count, metricName: `${name}_count`, labels: {}, sharedLabels: s.labels },
      );
    }
    return samples;
  }

  /**
   * `ficus_requests_total`'s sample lines, `SERIES_PER_PART` series to a part, as prom-client
   * would print them. Written here, from plain numbers, because prom-client's formatting of
   * some 100,000 lines (thousands of routes) cost 200 ms and more of the event loop per scrape.
   */
  *countLines(name: string): Generator<string> {
    for (const part of parts(this.#series)) {
      let text = '';
      for (const s of part) {
        const labels = labelText(s);
        for (const [status, n] of s.codes) text += `${name}{${labels},code="${status === 0 ? '000' : status}"} ${n}\n`;
        // The first of the two families written (the histogram's lines follow with a count as high or higher).
        s.exported = s.count;
      }
      yield text;
    }
  }

  /** The histogram's sample lines, as `countLines` writes the counts: cumulative buckets, +Inf, sum, count. */
  *histogramLines(name: string): Generator<string> {
    const buckets = this.bounds.map((le) => `${name}_bucket{le="${le}",`);
    for (const part of parts(this.#series)) {
      let text = '';
      for (const s of part) {
        const labels = labelText(s);
        let cumulative = 0;
        for (let i = 0; i < buckets.length; i++) {
          cumulative += s.buckets[i] as number;
          text += `${buckets[i]}${labels}} ${cumulative}\n`;
        }
        text += `${name}_bucket{le="+Inf",${labels}} ${s.count}\n${name}_sum{${labels}} ${s.sum}\n${name}_count{${labels}} ${s.count}\n`;
      }
      yield text;
    }
  }

  get size(): number {
    return this.#series.length;
  }

  clear(): void {
    this.#series.length = 0;
    this.#index.clear();
  }

  /** Keeps only the series `keep` accepts (the others are forgotten, their counts with them); true when some were kept only until shown. */
  retain(keep: (labels: SeriesLabels) => boolean): boolean {
    // A series counted after the exposition wrote it (a request of a removed route ending
    // mid-scrape), or never written, stays until a scrape has shown its last value.
    let unshown = false;
    const kept = this.#series.filter((s) => keep(s.labels) || (s.exported !== s.count && (unshown = true)));
    if (kept.length === this.#series.length) return unshown;
    this.clear();
    for (const s of kept) {
      const { route, service, color, side } = s.labels;
      child(child(child(this.#index, route), service), color).set(side, s);
      this.#series.push(s);
    }
    return unshown;
  }
}

function child<T>(map: Map<string, Map<string, T>>, key: string): Map<string, T> {
  let inner = map.get(key);
  if (inner === undefined) map.set(key, (inner = new Map()));
  return inner;
}

/** Series per part of the exposition: about a millisecond's work, between which requests are served. */
const SERIES_PER_PART = 256;

/** The series as they are now, in parts: a reload's pruning between two parts must not shift them. */
function* parts(series: readonly Series[]): Generator<readonly Series[]> {
  const now = series.slice();
  for (let start = 0; start < now.length; start += SERIES_PER_PART) yield now.slice(start, start + SERIES_PER_PART);
}

function labelText(s: Series): string {
  if (s.text === undefined) {
    const { route, service, color, side } = s.labels;
    s.text = `route="${escapeLabel(route)}",service="${escapeLabel(service)}",color="${escapeLabel(color)}",side="${escapeLabel(side)}"`;
  }
  return s.text;
}

/** The exposition format's escapes in a label value (names are plain; this keeps any other value sound). */
function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}
