import type { Clock, Random } from '../observe/clock.js';
import type { OutlierEvents } from '../upstream/outlier.js';
import { PoolRegistry } from '../upstream/pools.js';
import { ServiceRuntime } from '../upstream/service.js';
import { compile } from './compile.js';
import type { ConfigIssue } from './issues.js';
import { loadRoutesFile } from './load.js';
import type { Snapshot } from './snapshot.js';

/** A snapshot plus the runtime state it routes to: what one request reads, once, at its start. */
export interface Generation {
  readonly snapshot: Snapshot;
  readonly services: ReadonlyMap<string, ServiceRuntime>;
}

export type ReloadTrigger = 'start' | 'file' | 'signal' | 'admin';

export interface ReloadReport {
  trigger: ReloadTrigger;
  at: Date;
  result: 'success' | 'failure' | 'unchanged';
  hashBefore: string;
  hashAfter: string;
  issues: readonly ConfigIssue[];
}

export interface StoreDeps {
  clock: Clock;
  random: Random;
  outlierEvents: (service: string) => OutlierEvents;
  env?: NodeJS.ProcessEnv;
}

/**
 * Holds the current generation and replaces it whole. A reload parses, validates and compiles
 * the file before anything changes; any error leaves the running generation untouched.
 * Requests keep the generation they started with, so in-flight work never sees a swap.
 */
export class ConfigStore {
  readonly pools = new PoolRegistry();
  #current: Generation;
  #last: ReloadReport;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly deps: StoreDeps,
    first: Snapshot,
  ) {
    this.#current = this.#build(first, undefined);
    this.#last = { trigger: 'start', at: first.loadedAt, result: 'success', hashBefore: '', hashAfter: first.hash, issues: [] };
  }

  /** Loads the first configuration; throws a ConfigError listing every issue when it is bad. */
  static async open(file: string, deps: StoreDeps): Promise<ConfigStore> {
    const loaded = await loadRoutesFile(file, deps.env);
    if (!loaded.ok) {
      const { ConfigError } = await import('./issues.js');
      throw new ConfigError(loaded.issues);
    }
    return new ConfigStore(file, deps, compile(loaded.config, file, loaded.hash, new Date(deps.clock.now())));
  }

  get current(): Generation {
    return this.#current;
  }

  get lastReload(): ReloadReport {
    return this.#last;
  }

  /** Serialized: concurrent triggers queue up rather than race. */
  reload(trigger: ReloadTrigger, force = false): Promise<ReloadReport> {
    const next = this.#queue.then(() => this.#reload(trigger, force));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #reload(trigger: ReloadTrigger, force: boolean): Promise<ReloadReport> {
    const before = this.#current.snapshot;
    const at = new Date(this.deps.clock.now());
    const loaded = await loadRoutesFile(this.file, this.deps.env);
    if (!loaded.ok) {
      this.#last = { trigger, at, result: 'failure', hashBefore: before.hash, hashAfter: loaded.hash, issues: loaded.issues };
      return this.#last;
    }
    if (loaded.hash === before.hash && !force) {
      this.#last = { ...this.#last, trigger, at, result: 'unchanged', hashBefore: before.hash, hashAfter: loaded.hash, issues: [] };
      return this.#last;
    }
    let snapshot: Snapshot;
    try {
      snapshot = compile(loaded.config, this.file, loaded.hash, at);
    } catch (error) {
      const issue = { file: this.file, line: 1, col: 1, path: '', message: `cannot compile: ${(error as Error).message}` };
      this.#last = { trigger, at, result: 'failure', hashBefore: before.hash, hashAfter: loaded.hash, issues: [issue] };
      return this.#last;
    }
    const previous = this.#current;
    this.#current = this.#build(snapshot, previous);
    this.#last = { trigger, at, result: 'success', hashBefore: before.hash, hashAfter: snapshot.hash, issues: [] };
    const keep = new Set<string>();
    for (const service of this.#current.services.values()) for (const key of service.poolKeys) keep.add(key);
    void this.pools.retainOnly(keep);
    return this.#last;
  }

  #build(snapshot: Snapshot, previous: Generation | undefined): Generation {
    const services = new Map<string, ServiceRuntime>();
    for (const [name, def] of snapshot.services) {
      const kept = previous?.services.get(name);
      services.set(
        name,
        kept && kept.def.fingerprint === def.fingerprint
          ? kept
          : new ServiceRuntime(def, this.pools, this.deps.clock, this.deps.random, this.deps.outlierEvents(name)),
      );
    }
    return Object.freeze({ snapshot, services });
  }

  async close(): Promise<void> {
    await this.pools.closeAll();
  }
}
