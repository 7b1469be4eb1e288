import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { EVENT } from '../observe/log.js';

export interface Paint {
  bold(text: string): string;
  dim(text: string): string;
  status(code: number, text: string): string;
}

const ESC = '\u001b[';

/** ANSI styling for a terminal; plain text for pipes, files and NO_COLOR. */
export function paint(enabled: boolean): Paint {
  const wrap = (open: string, close: string) => (text: string) => (enabled ? `${ESC}${open}m${text}${ESC}${close}m` : text);
  const green = wrap('32', '39');
  const yellow = wrap('33', '39');
  const red = wrap('31', '39');
  return {
    bold: wrap('1', '22'),
    dim: wrap('2', '22'),
    status: (code, text) => (code >= 200 && code < 300 ? green(text) : code >= 300 && code < 500 ? yellow(text) : red(text)),
  };
}

interface Line {
  level: number;
  event?: string;
  msg?: string;
  [key: string]: unknown;
}

const WARN = 40;

/**
 * A pino logger whose lines are rendered for a person watching the demo: one short line per
 * request saying who answered, and plain words for reloads. `ficus start` keeps JSON lines.
 */
export function consoleLogger(write: (text: string) => void, style: Paint): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) {
        if (!text) continue;
        const rendered = render(JSON.parse(text) as Line, style);
        if (rendered) write(`${rendered}\n`);
      }
      done();
    },
  });
  return pino({ level: 'info' }, sink);
}

export function render(line: Line, style: Paint): string | undefined {
  switch (line.event) {
    case EVENT.access: {
      const status = Number(line.status ?? 0);
      const request = `${String(line.method ?? '')} ${String(line.path ?? '')}`;
      const route = String(line.route ?? '');
      const colour = line.color ? `-${String(line.color)}` : '';
      // Named as the demo's stand-ins name themselves, so a cutover shows in who answered.
      const service = line.service ? `${String(line.service)}${colour}` : '';
      const who = service || (route ? 'ficus' : 'no route');
      const why = `${route ? `route ${route}` : 'nothing matched'}${line.side === 'canary' ? ' · canary' : ''}${line.preview ? ' · preview' : ''}`;
      const fault = line.fault ? ` · ${String(line.fault)}` : '';
      return `  ${style.status(status, String(status || '---').padStart(3))}  ${request.padEnd(28)} → ${style.bold(who.padEnd(12))} ${style.dim(`${why} · ${String(line.durationMs ?? '')} ms${fault}`)}`;
    }
    case EVENT.reloaded:
      return `  ${style.bold('↻ routes reloaded')} (${String(line.trigger ?? '')}): new requests follow the new routes`;
    case EVENT.reloadUnchanged:
      return `  ↻ routes unchanged (${String(line.trigger ?? '')}): nothing to do`;
    case EVENT.reloadFailed: {
      const errors = Array.isArray(line.errors) ? line.errors.map((e) => `      ${String(e)}`) : [];
      return [`  ${style.status(500, '✗ routes file rejected')}; the previous routes keep serving:`, ...errors].join('\n');
    }
    case EVENT.canaryEjected:
      return `  ${style.status(500, `✗ canary ${String(line.canary ?? '')} ejected`)} from route ${String(line.route ?? '')} (${String(line.reason ?? '')}): ${String(line.message ?? '')}; its users are back on the stable side`;
    case EVENT.canaryReadmitted:
      return `  ${style.bold(`↺ canary ${String(line.canary ?? '')} readmitted`)} to route ${String(line.route ?? '')} at ${String(line.toWeight ?? '')} %`;
    case EVENT.canaryStep:
      return `  ↗ canary ${String(line.canary ?? '')} of route ${String(line.route ?? '')}: ${String(line.message ?? '')}`;
    case EVENT.canaryPromoted:
      return `  ${style.bold(`★ canary ${String(line.canary ?? '')} promoted`)} on route ${String(line.route ?? '')}: ${String(line.message ?? '')}`;
    case EVENT.shadowMismatch:
      return `  ${style.status(400, '≠ shadow')} ${String(line.shadow ?? '')} answered ${String(line.method ?? '')} differently from route ${String(line.route ?? '')}: ${mismatchOf(line)}`;
    case EVENT.draining:
      return `  draining: ${String(line.inflight ?? 0)} request(s) in flight`;
    case EVENT.started:
    case EVENT.stopped:
      return undefined;
    default:
      return line.level >= WARN ? `  ! ${String(line.msg ?? line.event ?? '')}` : undefined;
  }
}

/** Where a shadow's answer differed, in the words of the mismatch line's fields. */
function mismatchOf(line: Line): string {
  const parts: string[] = [];
  const status = line.status as { primary?: number; shadow?: number } | undefined;
  if (status && status.primary !== status.shadow) parts.push(`status ${String(status.primary)} vs ${String(status.shadow)}`);
  if (Array.isArray(line.headers) && line.headers.length > 0) parts.push(`headers ${line.headers.join(', ')}`);
  const body = line.body as { kind?: string; differences?: { path: string; kind: string }[]; truncated?: boolean } | undefined;
  if (body?.kind === 'json' && body.differences) {
    const shown = body.differences.slice(0, 3).map((d) => `${d.path} ${d.kind}`);
    const more = body.differences.length - shown.length;
    parts.push(`${shown.join(', ')}${more > 0 || body.truncated ? ', and more' : ''}`);
  } else if (body?.kind === 'bytes') {
    parts.push('the body');
  }
  const left = Number(line.suppressed ?? 0);
  return `${parts.join('; ')}${left > 0 ? ` (${left} more since the last such line)` : ''}`;
}
