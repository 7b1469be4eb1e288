import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Every metric ficus exports is defined here (SPEC §4). One registry per running proxy. */
export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'ficus_requests_total',
    help: 'Requests answered, by route, service, colour, side and status code ("000": no response).',
    labelNames: ['route', 'service', 'color', 'side', 'code'] as const,
    registers: [this.registry],
  });

  readonly duration = new Histogram({
    name: 'ficus_request_duration_seconds',
    help: 'Time from request received to response finished.',
    labelNames: ['route', 'service', 'color', 'side'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly upstreamErrors = new Counter({
    name: 'ficus_upstream_errors_total',
    help: 'Upstream failures by service and kind (connect, reset, timeout, protocol).',
    labelNames: ['service', 'kind'] as const,
    registers: [this.registry],
  });

  readonly endpointUp = new Gauge({
    name: 'ficus_endpoint_up',
    help: '1 when the endpoint is in service, 0 while ejected.',
    labelNames: ['service', 'endpoint'] as const,
    registers: [this.registry],
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

  readonly #byRoute = new Map<string, RouteSeries>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'ficus_' });
  }

  /** Counts one request; label children are cached so the hot path does one Map lookup. */
  recordRequest(route: string, service: string, color: string, side: string, status: number, seconds: number): void {
    const key = `${route}\0${service}\0${color}\0${side}`;
    let series = this.#byRoute.get(key);
    if (!series) {
      series = { labels: { route, service, color, side }, duration: this.duration.labels(route, service, color, side), codes: new Map() };
      this.#byRoute.set(key, series);
    }
    let counter = series.codes.get(status);
    if (!counter) {
      counter = this.requests.labels({ ...series.labels, code: status === 0 ? '000' : String(status) });
      series.codes.set(status, counter);
    }
    counter.inc();
    series.duration.observe(seconds);
  }

  configLoaded(hash: string): void {
    this.configInfo.reset();
    this.configInfo.labels(hash).set(1);
  }
}

interface RouteSeries {
  labels: { route: string; service: string; color: string; side: string };
  duration: { observe(value: number): void };
  codes: Map<number, { inc(): void }>;
}
