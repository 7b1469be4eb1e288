import { EVENT, lineSinkOf, type Logger } from './log.js';

/** One access line's fields (SPEC §5): never a user id, a cookie, a token or a query string. */
export interface AccessFields {
  readonly requestId: string;
  readonly method: string | undefined;
  readonly path: string;
  readonly route: string;
  readonly service: string;
  readonly side: string | undefined;
  readonly color: string | undefined;
  readonly preview: boolean | undefined;
  readonly endpoint: string;
  readonly status: number;
  readonly durationMs: number;
  readonly upstreamMs: number;
  readonly bytesOut: number;
  readonly fault: string | undefined;
}

/** Characters a JSON string may hold as they are: printable ASCII but `"` and `\`. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function str(value: string): string {
  return PLAIN.test(value) ? `"${value}"` : JSON.stringify(value);
}

/**
 * A non-negative number of milliseconds to two decimals, exactly as JSON prints
 * `Math.round(ms * 100) / 100`, from integers: V8's shortest form of a fraction costs about
 * 100 ns, and a line has two.
 */
export function hundredths(ms: number): string {
  const c = Math.round(ms * 100);
  if (!(c >= 0 && c <= Number.MAX_SAFE_INTEGER)) return JSON.stringify(c / 100);
  const fraction = c % 100;
  const whole = (c - fraction) / 100;
  if (fraction === 0) return `${whole}`;
  if (fraction % 10 === 0) return `${whole}.${fraction / 10}`;
  return `${whole}.${fraction < 10 ? '0' : ''}${fraction}`;
}

/** Distinct route, service, endpoint and method names kept as JSON; more means a reset. */
const MAX_NAMES = 1_024;

/**
 * The access line of every request. When the logger is ficus's own (it has a line sink), the
 * line is written there directly, byte for byte what pino would print for
 * `logger.info({ event: 'access', ...fields })`, without pino's per-call work (a few µs a
 * request); any other logger gets exactly that call.
 */
export class AccessLog {
  readonly #sink: ReturnType<typeof lineSinkOf>;
  // The clock's text and the names' JSON are made once and reused: under load many lines
  // share a millisecond, and every line repeats names from the configuration.
  #now = -1;
  #nowText = '';
  readonly #names = new Map<string, string>();

  constructor(private readonly logger: Logger) {
    this.#sink = lineSinkOf(logger);
  }

  write(f: AccessFields): void {
    const sink = this.#sink;
    if (sink === undefined) {
      this.logger.info({ event: EVENT.access, ...f });
      return;
    }
    if (!this.logger.isLevelEnabled('info')) return;
    const now = Date.now();
    if (now !== this.#now) {
      this.#now = now;
      this.#nowText = `${now}`;
    }
    // Joined from parts, not concatenated: the line waits in the batch for some hundred
    // requests, and a concatenation is a tree of ~30 strings that the young-generation GC
    // copies until the batch is joined, then flattens from cold memory: under perf, that
    // flattening was the largest single item of ficus's own CPU per request.
    const parts = ['{"level":30,"time":', this.#nowText, sink.bindings, ',"event":"access","requestId":', str(f.requestId)];
    if (f.method !== undefined) parts.push(',"method":', this.#name(f.method));
    parts.push(',"path":', str(f.path), ',"route":', this.#name(f.route), ',"service":', this.#name(f.service));
    if (f.side !== undefined) parts.push(',"side":', this.#name(f.side));
    if (f.color !== undefined) parts.push(',"color":', this.#name(f.color));
    if (f.preview !== undefined) parts.push(',"preview":', `${f.preview}`);
    parts.push(',"endpoint":', this.#name(f.endpoint), ',"status":', `${f.status}`, ',"durationMs":', hundredths(f.durationMs), ',"upstreamMs":', hundredths(f.upstreamMs), ',"bytesOut":', `${f.bytesOut}`);
    if (f.fault !== undefined) parts.push(',"fault":', this.#name(f.fault));
    parts.push('}\n');
    sink.write(parts.join(''));
  }

  #name(value: string): string {
    let json = this.#names.get(value);
    if (json === undefined) {
      if (this.#names.size >= MAX_NAMES) this.#names.clear();
      json = str(value);
      this.#names.set(value, json);
    }
    return json;
  }
}
