import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Snapshot } from '../config/snapshot.js';
import { systemClock, type Clock } from './clock.js';
import { logDrops } from './log.js';
import { LEGACY_SHARE_WINDOW_MS, ShareWindow } from './share-window.js';
import { RequestSeries, type Sample } from './request-series.js';

/** One endpoint as `endpoint_up` shows it: service, endpoint URL (origin and path), in service. */
export type EndpointState = readonly [service: string, endpoint: string, up: boolean];

const REQUESTS = 'ficus_requests_total';
const DURATION = 'ficus_request_duration_seconds';

/** Every metric ficus exports is defined here (SPEC §4). One registry per running proxy. */
export class Metrics {
  readonly registry = new Registry();

  /** Counted on the hot path in plain numbers; the two metrics below read it at scrape time. */
  readonly #perRequest = new RequestSeries([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);

  readonly requests = new Counter({
    name: REQUESTS,
    help: 'Requests answered, by route, service, colour, side and status code ("000": no response).',
    labelNames: ['route', 'service', 'color', 'side', 'code'] as const,
    registers: [this.registry],
    collect: () => {
      this.requests.reset();
      for (const [labels, code, n] of this.#perRequest.counts()) this.requests.labels({ ...labels, code }).inc(n);
    },
  });

  readonly duration = new SeriesHistogram(
    {
      name: DURATION,
      help: 'Time from request received to response finished.',
      labelNames: ['route', 'service', 'color', 'side'] as const,
      buckets: [...this.#perRequest.bounds],
      registers: [this.registry],
    },
    this.#perRequest,
  );

  readonly edgeRefusals = new Counter({
    name: 'ficus_edge_refusals_total',
    help: 'Requests the edge listener answered itself before any route was looked for (a malformed or ambiguous head, a bad Host, a head over the limits, the header timeout, CONNECT), by status code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  /** Counted where the log writes, read at scrape time. */
  readonly logLinesDropped = new Counter({
    name: 'ficus_log_dropped_lines_total',
    help: 'Log lines (access lines included) dropped because the log destination did not keep up and the lines waiting for it reached their bound.',
    registers: [this.registry],
    collect() {
      this.reset();
      this.inc(logDrops.lines);
    },
  });

  readonly upstreamErrors = new Counter({
    name: 'ficus_upstream_errors_total',
    help: 'Upstream failures by service and kind (connect, reset, timeout, protocol).',
    labelNames: ['service', 'kind'] as const,
    registers: [this.registry],
  });

  /** Read at scrape time, so it always agrees with /status, however endpoints came and went. */
  readonly endpointUp = new Gauge({
    name: 'ficus_endpoint_up',
    help: '1 when the endpoint is in service, 0 while ejected or failing its health checks.',
    labelNames: ['service', 'endpoint'] as const,
    registers: [this.registry],
    collect: () => {
      this.endpointUp.reset();
      // The endpoint is named by its URL, as /status names it: two URLs on one origin (a path
      // each) are two series. The same URL listed twice (both colours, or a repeat in `urls`) is
      // one series, up only while every listing of it is.
      const up = new Map<string, { service: string; endpoint: string; up: boolean }>();
      for (const [service, endpoint, isUp] of this.#endpoints()) {
        const key = `${service}\n${endpoint}`;
        const seen = up.get(key);
        if (seen === undefined) up.set(key, { service, endpoint, up: isUp });
        else seen.up &&= isUp;
      }
      for (const e of up.values()) this.endpointUp.labels(e.service, e.endpoint).set(e.up ? 1 : 0);
    },
  });

  readonly reloads = new Counter({
    name: 'ficus_config_reloads_total',
    help: 'Configuration reload attempts by result (success, failure, unchanged).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly lastReloadSuccess = new Gauge({
    name: 'ficus_config_last_reload_success',
    help: '1 when the last reload attempt succeeded, 0 when it was rejected.',
    registers: [this.registry],
  });

  readonly configInfo = new Gauge({
    name: 'ficus_config_info',
    help: 'The hash of the running configuration (value is always 1).',
    labelNames: ['hash'] as const,
    registers: [this.registry],
  });

  readonly toggleEnabled = new Gauge({
    name: 'ficus_toggle_enabled',
    help: "1 when the toggle's `enabled` is true in the running configuration (it may still be on for only some users), 0 when switched off.",
    labelNames: ['toggle'] as const,
    registers: [this.registry],
  });

  readonly canaryWeight = new Gauge({
    name: 'ficus_canary_weight',
    help: "The percentage of users a canary route sends to its canary right now: the file's weight, the current step of a progressive rollout, or 0 while ejected.",
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly rollbacks = new Counter({
    name: 'ficus_rollbacks_total',
    help: 'Automatic rollbacks of a blue/green cutover by its guard, by service.',
    labelNames: ['service'] as const,
    registers: [this.registry],
  });

  readonly ejections = new Counter({
    name: 'ficus_ejections_total',
    help: 'Canary ejections by route and reason (error_rate, p99, consecutive_failures, vs_stable, manual).',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });

  readonly shadowComparisons = new Counter({
    name: 'ficus_shadow_comparisons_total',
    help: "Shadow answers compared with the primary's, by route and result (match, mismatch, error, skipped).",
    labelNames: ['route', 'result'] as const,
    registers: [this.registry],
  });

  readonly shadowDropped = new Counter({
    name: 'ficus_shadow_dropped_total',
    help: 'Requests sampled for a shadow copy but not copied, by route and reason (saturated: the copies in flight reached maxConcurrent; body_too_large).',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });

  /** Read at scrape time from the handler's own count: nothing on the hot path. */
  readonly requestsInFlight = new Gauge({
    name: 'ficus_requests_in_flight',
    help: 'Requests read and not yet answered, pipelined ones waiting their turn included (WebSocket tunnels are ficus_websocket_tunnels).',
    registers: [this.registry],
    collect: () => {
      this.requestsInFlight.set(this.#inFlight());
    },
  });

  readonly websocketTunnels = new Gauge({
    name: 'ficus_websocket_tunnels',
    help: 'WebSocket tunnels open now, by route and service.',
    labelNames: ['route', 'service'] as const,
    registers: [this.registry],
  });

  /** Requests forwarded to a service over the last few minutes, and how many went to legacy ones. */
  readonly forwarded: ShareWindow;

  readonly legacyShare = new Gauge({
    name: 'ficus_legacy_share',
    help: `Fraction of the requests forwarded to a service in the last ${LEGACY_SHARE_WINDOW_MS / 60_000} minutes that a legacy service served (the migration's progress; NaN with no traffic).`,
    registers: [this.registry],
    collect: () => {
      this.legacyShare.set(this.forwarded.read().share);
    },
  });

  #configHash = '';
  #prunedFor = '';
  /** Series made since the last prune may be of a route gone (a request of an older generation ending): the next prune looks. */
  #seriesAtPrune = 0;
  #tunnelsLeft = false;
  /** Series of routes gone kept until a scrape shows their last value: looked at again after the next. */
  #seriesLeft = false;
  #endpoints: () => Iterable<EndpointState> = () => [];
  #inFlight: () => number = () => 0;

  constructor(clock: Clock = systemClock) {
    this.forwarded = new ShareWindow(clock, LEGACY_SHARE_WINDOW_MS);
    collectDefaultMetrics({ register: this.registry, prefix: 'ficus_' });
  }

  /**
   * Counts one request, in plain numbers (RequestSeries): no label hashing on the hot path.
   * `legacy` says the service that answered is one being migrated away from.
   */
  recordRequest(route: string, service: string, color: string, side: string, status: number, seconds: number, legacy = false): void {
    // A shadow copy serves no client: it says nothing of the migration's progress.
    if (service !== '' && side !== 'shadow') this.forwarded.add(legacy);
    this.#perRequest.record(route, service, color, side, status, seconds);
  }

  /** Counts an answer the edge listener sent before any route was looked for. */
  edgeRefused(status: number): void {
    this.edgeRefusals.labels(String(status)).inc();
  }

  /** Where `ficus_requests_in_flight` reads its count. */
  watchInFlight(source: () => number): void {
    this.#inFlight = source;
  }

  /** Where `endpoint_up` reads the running endpoints from. */
  watchEndpoints(source: () => Iterable<EndpointState>): void {
    this.#endpoints = source;
  }

  /** The effective weight of every canary route of the running configuration, and no other. */
  publishCanaries(canaries: Iterable<{ readonly route: string; readonly weight: number } | undefined>): void {
    this.canaryWeight.reset();
    for (const canary of canaries) if (canary) this.canaryWeight.labels(canary.route).set(canary.weight);
  }

  configLoaded(hash: string): void {
    this.configInfo.reset();
    this.configInfo.labels(hash).set(1);
  }

  /**
   * Forgets the series of routes and services the running configuration no longer has. Called
   * after a scrape, so that a series' last value is exported at least once before it goes (as
   * Traefik does): a file whose routes are renamed release after release must not grow /metrics,
   * and the heap, for as long as the proxy runs. A request of an older generation that ends later
   * brings its series back until the next scrape. A tunnel gauge still above 0 stays: its tunnels'
   * `dec()` must find it.
   */
  async dropStale(snapshot: Snapshot): Promise<void> {
    if (snapshot.hash === this.#prunedFor && this.#perRequest.size === this.#seriesAtPrune && !this.#tunnelsLeft && !this.#seriesLeft) return;
    this.#prunedFor = snapshot.hash;
    this.#tunnelsLeft = false;
    const routes = new Set(snapshot.routes.map((route) => route.name));
    const live = (route: unknown, service: unknown): boolean =>
      (route === undefined || route === '' || routes.has(route as string)) && (service === undefined || service === '' || snapshot.services.has(service as string));
    this.#seriesLeft = this.#perRequest.retain((labels) => live(labels.route, labels.service));
    const labelled: (Counter<string> | Gauge<string>)[] = [this.upstreamErrors, this.ejections, this.rollbacks, this.shadowComparisons, this.shadowDropped, this.websocketTunnels];
    for (const metric of labelled) {
      for (const { labels, value } of (await metric.get()).values) {
        if (live(labels['route'], labels['service'])) continue;
        if (metric === this.websocketTunnels && value !== 0) {
          // Looked at again at the next scrape, once these tunnels may have ended.
          this.#tunnelsLeft = true;
          continue;
        }
        metric.remove(labels as Record<string, string>);
      }
    }
    this.#seriesAtPrune = this.#perRequest.size;
  }

  /**
   * The text exposition, as `registry.metrics()` prints it, in parts to be written as they are
   * made. The request families are written from their plain numbers (RequestSeries), a slice of
   * series at a time with a turn of the event loop between: at thousands of routes they are some
   * 100,000 lines, which prom-client formatted in 200 ms and more, every proxied request waiting.
   */
  async *exposition(): AsyncGenerator<string> {
    let first = true;
    for (const metric of this.registry.getMetricsAsArray()) {
      // prom-client's separator: a blank line between families, a newline at the end.
      const before = first ? '' : '\n';
      first = false;
      const lines = metric.name === REQUESTS ? this.#perRequest.countLines(REQUESTS) : metric.name === DURATION ? this.#perRequest.histogramLines(DURATION) : undefined;
      if (lines === undefined) {
        yield `${before}${await this.registry.getSingleMetricAsString(metric.name)}\n`;
        continue;
      }
      yield `${before}# HELP ${metric.name} ${metric.help}\n# TYPE ${metric.name} ${metric.type}\n`;
      for (const part of lines) {
        await new Promise((resolve) => setImmediate(resolve));
        yield part;
      }
    }
  }

  /** Gauges read from the configuration itself; idempotent, so calling it at every scrape is cheap. */
  publishConfig(snapshot: Snapshot): void {
    if (snapshot.hash === this.#configHash) return;
    this.#configHash = snapshot.hash;
    this.toggleEnabled.reset();
    for (const toggle of snapshot.audience.toggles) this.toggleEnabled.labels(toggle.name).set(toggle.enabled ? 1 : 0);
  }
}

/**
 * `ficus_request_duration_seconds`: a prom-client Histogram (name, help, registry, exposition)
 * whose samples come from a RequestSeries instead of its own observe().
 */
class SeriesHistogram extends Histogram<'route' | 'service' | 'color' | 'side'> {
  // Not a #private field: prom-client's constructor calls reset() before subclass fields exist.
  private series: RequestSeries | undefined;

  constructor(config: ConstructorParameters<typeof Histogram<'route' | 'service' | 'color' | 'side'>>[0], series: RequestSeries) {
    super(config);
    this.series = series;
  }

  /** What the registry reads for the text exposition. */
  async getForPromString(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: string }> {
    const self = this as unknown as { name: string; help: string; aggregator: string };
    return { name: self.name, help: self.help, type: 'histogram', values: this.series?.histogram(self.name) ?? [], aggregator: self.aggregator };
  }

  override async get(): ReturnType<Histogram['get']> {
    const data = await this.getForPromString();
    const values = data.values.map(({ value, metricName, labels, sharedLabels }) => ({ value, metricName, labels: { ...labels, ...sharedLabels } }));
    return { ...data, values } as unknown as Awaited<ReturnType<Histogram['get']>>;
  }

  override reset(): void {
    this.series?.clear();
  }
}
