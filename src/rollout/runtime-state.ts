import type { Generation } from '../config/store.js';
import { EVENT, type Logger } from '../observe/log.js';
import type { CanaryRecord, CanaryRuntime } from './canary.js';
import type { Guards } from './guards.js';
import { emptyState, loadState, saveState, type StateRecord } from './persist.js';

/**
 * Runtime decisions (ejections, steps, rollbacks) kept across restarts (SPEC §1.4), in the state
 * file the running configuration names: restored once at start for the routes and services
 * unchanged since, saved after every decision and reload. Traffic never waits on a save; drain
 * waits on the newest, so the last decision before exit is on disk.
 */
export class RuntimeState {
  #lastSave: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly current: () => Generation,
    private readonly guards: Guards,
    private readonly logger: Logger,
  ) {}

  async restore(): Promise<void> {
    const path = this.current().snapshot.stateFile;
    const loaded = path === undefined ? { ok: true as const, state: emptyState() } : await loadState(path);
    if (!loaded.ok) this.logger.warn({ event: EVENT.stateIgnored, path, problem: loaded.problem }, loaded.problem);
    const { snapshot, canaries } = this.current();
    for (const canary of canaries) {
      const record = canary && loaded.state.routes[canary.route];
      if (canary && record?.fingerprint === canary.def.fingerprint) canary.restore(record as unknown as CanaryRecord);
    }
    this.guards.reconcile(snapshot, loaded.state.services);
    if (path !== undefined) this.save();
  }

  save(): void {
    const { snapshot, canaries } = this.current();
    const path = snapshot.stateFile;
    if (path === undefined) return;
    this.#lastSave = saveState(path, { routes: canaryRecords(canaries), services: this.guards.toJSON() }).then((result) => {
      if (!result.ok) this.logger.error({ event: EVENT.stateWriteFailed, path, problem: result.problem }, result.problem);
    });
  }

  /** The newest save has ended, written or not. */
  settled(): Promise<unknown> {
    return this.#lastSave;
  }
}

function canaryRecords(canaries: readonly (CanaryRuntime | undefined)[]): Record<string, StateRecord> {
  const records: Record<string, StateRecord> = {};
  for (const canary of canaries) if (canary) records[canary.route] = { fingerprint: canary.def.fingerprint, ...canary.toRecord() };
  return records;
}
