import { z } from 'zod';
import type { Generation } from '../config/store.js';
import { EVENT, type Logger } from '../observe/log.js';
import { FAIL_REASONS } from './analysis.js';
import type { CanaryRecord, CanaryRuntime } from './canary.js';
import type { GuardWatch } from './guard.js';
import type { Guards } from './guards.js';
import { emptyState, loadState, saveState, type StateRecord } from './persist.js';

/** A canary record as `toRecord` writes it: anything else (hand-edited, damaged) is ignored, not obeyed. */
const CanaryRecordShape = z.object({
  fingerprint: z.string(),
  state: z.enum(['running', 'ejected', 'promoted']),
  step: z.number().int().min(-1),
  weight: z.number().min(0).max(100),
  ejectedReason: z.enum([...FAIL_REASONS, 'consecutive_failures', 'manual']).optional(),
  message: z.string(),
  since: z.number().finite(),
  lastStepAt: z.number().finite().optional(),
});

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

  /** Takes back the saved decisions; returns the guarded cutovers this start begins (a colour changed while ficus was down). */
  async restore(): Promise<GuardWatch[]> {
    const path = this.current().snapshot.stateFile;
    const loaded = path === undefined ? { ok: true as const, state: emptyState() } : await loadState(path);
    if (!loaded.ok) this.logger.warn({ event: EVENT.stateIgnored, path, problem: loaded.problem }, loaded.problem);
    const { snapshot, canaries } = this.current();
    const saved = new Map<string, z.infer<typeof CanaryRecordShape>>();
    for (const [route, raw] of Object.entries(loaded.state.routes)) {
      const parsed = CanaryRecordShape.safeParse(raw);
      if (parsed.success) saved.set(route, parsed.data);
      else this.logger.warn({ event: EVENT.stateIgnored, path, route }, `state file ${path ?? ''}: the record of route ${route} is not one ficus writes; ignored`);
    }
    const used = new Set<string>();
    for (const canary of canaries) {
      if (!canary) continue;
      const record = saved.get(canary.route);
      if (record?.fingerprint === canary.def.fingerprint) {
        canary.restore(record as unknown as CanaryRecord);
        used.add(canary.route);
      }
    }
    // An ejection taken for a block that has changed since (or a route since renamed) ends, as a
    // reload would end it: said as a readmission, not silently.
    const renamedFrom = (service: string) => {
      for (const [route, record] of saved) {
        if (used.has(route) || snapshot.routes.some((r) => r.name === route) || serviceOf(record.fingerprint) !== service) continue;
        used.add(route);
        return record;
      }
      return undefined;
    };
    for (const canary of canaries) {
      if (!canary || used.has(canary.route)) continue;
      const predecessor = saved.get(canary.route) ?? renamedFrom(canary.def.service);
      if (predecessor?.state === 'ejected') canary.succeedSaved(predecessor.ejectedReason, 'start');
    }
    const watches = this.guards.reconcile(snapshot, loaded.state.services);
    if (path !== undefined) this.save();
    return watches;
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

/** The canary service named by a canary fingerprint (`[route, block]`), for a route renamed since. */
function serviceOf(fingerprint: string): string | undefined {
  try {
    const [, block] = JSON.parse(fingerprint) as [unknown, { to?: unknown }];
    return typeof block?.to === 'string' ? block.to : undefined;
  } catch {
    return undefined;
  }
}
