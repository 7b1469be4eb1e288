import { appendFile, open } from 'node:fs/promises';
import type { Clock } from './clock.js';

/** SPEC §6: the kinds of record an auditor can find in the audit log. */
export type AuditKind = 'reload' | 'cutover' | 'edit' | 'ejection' | 'readmission' | 'promotion' | 'rollback';

/** The log event of an audit record that could not be written; traffic goes on regardless. */

/**
 * Below PIPE_BUF (4096 on Linux), an O_APPEND write lands whole even on file systems and pipes
 * that give weaker guarantees than a local disk, so writers in several processes (the proxy, the
 * CLI) never interleave inside a line.
 */
export const MAX_LINE_BYTES = 4_000;

export interface AuditDeps {
  clock: Clock;
  /** Told about a record that could not be written; must not throw. */
  onError: (error: NodeJS.ErrnoException, path: string, kind: AuditKind) => void;
}

/**
 * The JSON-lines audit file (SPEC §5). Each record is one `appendFile` call, which opens the
 * file with O_APPEND and writes the line in a single write. Opening per record, rather than
 * holding a descriptor, lets logrotate move the file away. Records of one writer keep their
 * order; a failed write is reported through `onError` and never rejects, so neither a request
 * nor a reload ever waits on, or fails because of, the audit file.
 */
export class AuditLog {
  #tail: Promise<unknown> = Promise.resolve();

  /** `target` names the file at the moment a record is made (a reload may change it); undefined: no audit log. */
  constructor(
    private readonly target: () => string | undefined,
    private readonly deps: AuditDeps,
  ) {}

  /** Queues one record; resolves true once it is written, false when it was not (or no file is set). */
  record(kind: AuditKind, details: Readonly<Record<string, unknown>>): Promise<boolean> {
    const path = this.target();
    if (path === undefined) return Promise.resolve(false);
    const line = auditLine({ time: new Date(this.deps.clock.now()).toISOString(), kind, ...details });
    const written = this.#tail.then(() =>
      appendLine(path, line).then(
        () => true,
        (error: NodeJS.ErrnoException) => {
          try {
            this.deps.onError(error, path, kind);
          } catch {
            // Reporting the failure must not become a failure of its own.
          }
          return false;
        },
      ),
    );
    this.#tail = written;
    return written;
  }

  /** Resolves when every record queued so far has been written or given up. */
  async settled(): Promise<void> {
    await this.#tail;
  }
}

/**
 * One record as one line of at most MAX_LINE_BYTES. A record too long for that (a reload with
 * hundreds of errors) loses items from the end of its longest list, then characters from its
 * longest strings, and says so with `truncated: true`: a shortened record beats a torn one.
 */
export function auditLine(record: Readonly<Record<string, unknown>>): string {
  let line = JSON.stringify(record);
  if (Buffer.byteLength(line) <= MAX_LINE_BYTES - 1) return `${line}\n`;
  const copy: Record<string, unknown> = { ...record, truncated: true };
  for (;;) {
    line = JSON.stringify(copy);
    if (Buffer.byteLength(line) <= MAX_LINE_BYTES - 1 || !shrink(copy)) break;
  }
  // Nothing left to shrink (a huge key set): keep only what identifies the record.
  if (Buffer.byteLength(line) > MAX_LINE_BYTES - 1) line = JSON.stringify({ time: record.time, kind: record.kind, truncated: true });
  return `${line}\n`;
}

function shrink(record: Record<string, unknown>): boolean {
  const lists = Object.entries(record).filter((entry): entry is [string, unknown[]] => Array.isArray(entry[1]) && entry[1].length > 0);
  const longestList = lists.sort((a, b) => JSON.stringify(b[1]).length - JSON.stringify(a[1]).length)[0];
  if (longestList) {
    const [key, items] = longestList;
    record[key] = items.slice(0, -1);
    record[`${key}Omitted`] = (typeof record[`${key}Omitted`] === 'number' ? (record[`${key}Omitted`] as number) : 0) + 1;
    return true;
  }
  const strings = Object.entries(record).filter((entry): entry is [string, string] => typeof entry[1] === 'string' && entry[1].length > 64);
  const longestString = strings.sort((a, b) => b[1].length - a[1].length)[0];
  if (!longestString) return false;
  const [key, text] = longestString;
  record[key] = `${text.slice(0, Math.floor(text.length / 2))}…`;
  return true;
}


/**
 * Appends `line` with O_APPEND in one write. A file that does not end with a newline holds a
 * torn line (a write cut short by a full disk, a crash): this record starts on a line of its
 * own, or the fragment would swallow it and a good record would be lost with the bad one.
 */
async function appendLine(path: string, line: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'a+');
  } catch (error) {
    // A file this user may append to but not read: appended as it comes.
    if ((error as NodeJS.ErrnoException).code === 'EACCES') return appendFile(path, line, { encoding: 'utf8', flag: 'a' });
    throw error;
  }
  try {
    const { size } = await handle.stat();
    let text = line;
    if (size > 0) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) text = `\n${line}`;
    }
    await handle.writeFile(text, 'utf8');
  } finally {
    await handle.close();
  }
}
