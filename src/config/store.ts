import { readFile } from 'node:fs/promises';
import type { Pool } from 'undici';
import type { Clock, Random } from '../observe/clock.js';
import { CanaryRuntime, NO_CANARY_EVENTS, type CanaryEvents } from '../rollout/canary.js';
import { closeWhenReleased } from '../upstream/pool-holds.js';
import { PoolRegistry } from '../upstream/pools.js';
import { ServiceRuntime, type ColourRuntimes, type ServiceEvents } from '../upstream/service.js';
import { compile } from './compile.js';
import { ConfigError, type ConfigIssue } from './issues.js';
import { bytesHash, loadRoutesFile } from './load.js';
import { loadInWorker } from './load-in-worker.js';
import type { Colour, ServiceDef, Snapshot } from './snapshot.js';
import type { Running } from './validate.js';

/** A snapshot plus the runtime state it routes to: what one request reads, once, at its start. */
export interface Generation {
  readonly snapshot: Snapshot;
  readonly services: ReadonlyMap<string, ServiceRuntime>;
  /** The live state of each canary route, by route index (undefined for other routes). */
  readonly canaries: readonly (CanaryRuntime | undefined)[];
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
  serviceEvents: (service: string, colour?: Colour) => ServiceEvents;
  /** Told about every canary ejection, readmission, step and promotion. */
  canaryEvents?: CanaryEvents;
  env?: NodeJS.ProcessEnv;
}

/** How long `close()` lets requests on upstream pools finish before cutting them. */
const CLOSE_GRACE_MS = 1_000;

/**
 * Holds the current generation and replaces it whole. A reload parses, validates and compiles
 * the file before anything changes; any error leaves the running generation untouched.
 * Requests keep the generation they started with, so in-flight work never sees a swap.
 */
export class ConfigStore {
  readonly pools = new PoolRegistry();
  #current: Generation;
  #last: ReloadReport;
  /** Hash of the last content read from disk, good or bad, or why it could not be read: file events for it are noise. */
  #seen: string;
  #queue: Promise<unknown> = Promise.resolve();
  /** Pools of removed endpoints, closing gracefully; `close()` cuts them if they linger. */
  readonly #retiring = new Set<Pool>();
  readonly #bound: Running;
  /** New canary runtimes replacing old ones in the generation being built. */
  readonly #successions: [CanaryRuntime, CanaryRuntime][] = [];

  private constructor(
    readonly file: string,
    private readonly deps: StoreDeps,
    first: Snapshot,
  ) {
    this.#current = this.#build(first, undefined);
    this.#last = { trigger: 'start', at: first.loadedAt, result: 'success', hashBefore: '', hashAfter: first.hash, issues: [] };
    this.#seen = first.hash;
    this.#bound = { adminHost: first.admin.host };
  }

  /** Loads the first configuration; throws a ConfigError listing every issue when it is bad. */
  static async open(file: string, deps: StoreDeps): Promise<ConfigStore> {
    const loaded = await loadRoutesFile(file, deps.env);
    if (!loaded.ok) throw new ConfigError(loaded.issues);
    return new ConfigStore(file, deps, compile(loaded.config, file, loaded.hash, new Date(deps.clock.now()), loaded.fromEnv));
  }

  get current(): Generation {
    return this.#current;
  }

  /** The last reload that changed something or was asked for; `/status` and metrics show it. */
  get lastReload(): ReloadReport {
    return this.#last;
  }

  /**
   * Serialized: concurrent triggers queue up rather than race. A file event whose content was
   * already read (good or bad) is answered `unchanged` without being recorded, so an editor's
   * swap files beside a broken config do not repeat its errors; an explicit trigger (signal,
   * admin) always re-reads and records.
   */
  reload(trigger: ReloadTrigger, force = false): Promise<ReloadReport> {
    const next = this.#queue.then(() => this.#reload(trigger, force));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #reload(trigger: ReloadTrigger, force: boolean): Promise<ReloadReport> {
    const before = this.#current.snapshot;
    const at = new Date(this.deps.clock.now());
    const report = (result: ReloadReport['result'], hashAfter: string, issues: readonly ConfigIssue[]): ReloadReport => ({
      trigger,
      at,
      result,
      hashBefore: before.hash,
      hashAfter,
      issues,
    });
    // Any write in the config's directory (an audit log, a state file, an editor's swap file)
    // is a file event; content already read is recognized by its hash before it is parsed and
    // validated again, which costs ~30 ms of event-loop time for a 50-route file.
    if (!force) {
      // Hashed as bytes, as a rejected file is: a byte that is not UTF-8 must not read as the U+FFFD of a file that has one.
      const bytes = await readFile(this.file).catch(() => undefined);
      const hash = bytes === undefined ? undefined : bytesHash(bytes);
      if (trigger === 'file' && hash === this.#seen) return report('unchanged', this.#seen, []);
      // An explicit reload (SIGHUP from a config manager's every run, say) of the file running
      // now: nothing to parse again, which at 10,000 routes would hold the event loop a second.
      if (trigger !== 'file' && hash === before.hash) {
        this.#seen = before.hash;
        return (this.#last = report('unchanged', before.hash, []));
      }
    }
    // Addresses are bound once, from the first configuration (app.ts).
    const loaded = await loadInWorker(this.file, this.deps.env ?? process.env, { adminHost: this.#bound.adminHost });
    // A file that cannot be read is "seen" too: with an audit log beside it, every failure
    // reported would be one more event in the directory, and another failure.
    const seen = loaded.hash !== '' ? loaded.hash : `unreadable: ${loaded.ok ? '' : loaded.issues[0]?.message}`;
    if (trigger === 'file' && !force && seen === this.#seen) return report('unchanged', loaded.hash, []);
    this.#seen = seen;
    if (!loaded.ok) return (this.#last = report('failure', loaded.hash, loaded.issues));
    if (loaded.hash === before.hash && !force) return (this.#last = report('unchanged', loaded.hash, []));
    let snapshot: Snapshot;
    try {
      snapshot = compile(loaded.config, this.file, loaded.hash, at, loaded.fromEnv);
    } catch (error) {
      const issue = { file: this.file, line: 1, col: 1, path: '', message: `cannot compile: ${(error as Error).message}` };
      return (this.#last = report('failure', loaded.hash, [issue]));
    }
    const previous = this.#current;
    this.#current = this.#build(snapshot, previous);
    // Told once the new generation runs, so what is said of it (an audit record's hash) is of it.
    for (const [fresh, old] of this.#successions.splice(0)) fresh.succeed(old);
    this.#retire(previous);
    return (this.#last = report('success', snapshot.hash, []));
  }

  #build(snapshot: Snapshot, previous: Generation | undefined): Generation {
    const services = new Map<string, ServiceRuntime>();
    for (const [name, def] of snapshot.services) services.set(name, this.#runtime(def, previous?.services.get(name)));
    return Object.freeze({ snapshot, services, canaries: Object.freeze(this.#canaries(snapshot, previous)) });
  }

  /**
   * A canary's state (windows, ejection, step) carries over while its route keeps the same
   * name and canary block; a changed block is a new release and starts afresh, ending an ejection.
   */
  #canaries(snapshot: Snapshot, previous: Generation | undefined): (CanaryRuntime | undefined)[] {
    const before = new Map<string, CanaryRuntime>();
    for (const runtime of previous?.canaries ?? []) if (runtime) before.set(runtime.route, runtime);
    const succeeded = new Set<CanaryRuntime>();
    const canaries = snapshot.routes.map((route) => {
      const def = route.action.kind === 'proxy' ? route.action.canary : undefined;
      if (def === undefined) return undefined;
      // A route renamed around the same canary service starts afresh under its new name, as a
      // changed block does, and ending an ejection that way is announced as a readmission, never
      // silent. The seed is not compared: by default it is the route's name, so a rename changes it.
      const old = before.get(route.name) ?? [...before.values()].find((r) => r.def.service === def.service && !succeeded.has(r) && !snapshot.routes.some((x) => x.name === r.route));
      if (old && old.def.fingerprint === def.fingerprint) {
        before.delete(route.name);
        return old;
      }
      const fresh = new CanaryRuntime(route.name, def, this.deps.clock, this.deps.canaryEvents ?? NO_CANARY_EVENTS);
      if (old) {
        this.#successions.push([fresh, old]);
        succeeded.add(old);
      }
      return fresh;
    });
    for (const gone of before.values()) gone.retire();
    return canaries;
  }

  #runtime(def: ServiceDef, kept: ServiceRuntime | undefined): ServiceRuntime {
    if (kept && sameService(kept.def, def)) return kept;
    if (def.colours === undefined) return this.#newRuntime(def);
    const before = kept?.def.colours !== undefined ? kept.colours : undefined;
    const wasActive = kept?.def.colours?.active;
    const colour = (which: Colour): ServiceRuntime => {
      const old = before?.[which];
      const next = def.colours?.[which] as ServiceDef;
      const carried = old && sameService(old.def, next) ? old : undefined;
      // Cutover: the colour that just went inactive gives up its pools. Requests in flight on
      // them finish, then their connections close; preview traffic opens fresh ones.
      if (old && which === wasActive && which !== def.colours?.active) old.renewPools(this.pools, (pool) => this.#closeGracefully(pool), carried !== undefined);
      return carried ?? this.#newRuntime(next);
    };
    return this.#newRuntime(def, { blue: colour('blue'), green: colour('green') });
  }

  #newRuntime(def: ServiceDef, colours?: ColourRuntimes): ServiceRuntime {
    return new ServiceRuntime(def, this.pools, this.deps.clock, this.deps.random, this.deps.serviceEvents(def.name, def.colour), colours);
  }

  /**
   * Closes the pools no service uses any more. undici's close is graceful: requests still
   * running on the old generation finish first, then the connections go.
   */
  #retire(previous: Generation): void {
    const inUse = new Set<Pool>();
    const keys = new Set<string>();
    for (const runtime of runtimesOf(this.#current)) {
      for (const endpoint of runtime.endpoints) inUse.add(endpoint.pool);
      for (const key of runtime.poolKeys) keys.add(key);
    }
    const running = new Set(runtimesOf(this.#current));
    for (const runtime of runtimesOf(previous)) {
      for (const endpoint of runtime.endpoints) if (!inUse.has(endpoint.pool)) this.#closeGracefully(endpoint.pool);
      if (!running.has(runtime)) runtime.outlier.retire();
    }
    void this.pools.retainOnly(keys);
  }

  #closeGracefully(pool: Pool): void {
    if (this.#retiring.has(pool)) return;
    this.#retiring.add(pool);
    // undici's close is idempotent: this promise settles when any other close of it does.
    const gone = () => this.#retiring.delete(pool);
    closeWhenReleased(pool).then(gone, gone);
  }

  /** Closes every upstream pool, gracefully for up to `graceMs`, then by force. */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    const open = new Set(this.#retiring);
    for (const runtime of runtimesOf(this.#current)) for (const endpoint of runtime.endpoints) open.add(endpoint.pool);
    let timer: NodeJS.Timeout | undefined;
    const graceful = this.pools.closeAll().then(() => Promise.all([...this.#retiring].map((pool) => pool.close().catch(() => undefined))));
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), graceMs);
    });
    const outcome = await Promise.race([graceful, expired]);
    clearTimeout(timer);
    if (outcome === 'expired') await Promise.all([...open].map((pool) => pool.destroy().catch(() => undefined)));
  }
}

/** Every runtime of a generation: each service, and each colour of a blue/green one. */
export function* runtimesOf(generation: Generation): Iterable<ServiceRuntime> {
  for (const service of generation.services.values()) {
    yield service;
    if (service.colours) yield* [service.colours.blue, service.colours.green];
  }
}

/**
 * Runtime state (endpoint health, ejections, counters) belongs to a definition: it carries over
 * only when nothing about the service changed, so a reload never revives stale decisions.
 */
function sameService(a: ServiceDef, b: ServiceDef): boolean {
  return a.fingerprint === b.fingerprint && a.legacy === b.legacy;
}
