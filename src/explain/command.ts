import type { IncomingHttpHeaders } from 'node:http';
import { compile } from '../config/compile.js';
import { formatIssue } from '../config/issues.js';
import { loadRoutesFile } from '../config/load.js';
import { addHeaderLine, explain, type ExplainReport } from './explain.js';

export interface ExplainIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const USAGE = "usage: ficus explain METHOD URL [-u USER] [-H 'name: value']… [-c FILE] [--json]\n";

const defaultIo: ExplainIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  env: process.env,
};

class UsageError extends Error {}

interface Args {
  method: string;
  url: string;
  user: string | undefined;
  headers: IncomingHttpHeaders;
  file: string;
  json: boolean;
}

/**
 * `ficus explain METHOD URL [-u USER] [-H 'k: v']… [-c FILE] [--json]`: which route, cohorts,
 * toggles, side, colour and endpoints would serve the request, and why, from the file alone
 * (no running proxy needed). Exit 0 with the report, 1 when the file is invalid, 2 on misuse.
 */
export async function runExplain(argv: string[], io: ExplainIo = defaultIo): Promise<number> {
  let args: Args;
  try {
    args = parse(argv, io.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`ficus explain: ${error.message}\n${USAGE}`);
    return 2;
  }
  const loaded = await loadRoutesFile(args.file, io.env);
  if (!loaded.ok) {
    for (const issue of loaded.issues) io.stderr(`${formatIssue(issue)}\n`);
    return 1;
  }
  const snapshot = compile(loaded.config, args.file, loaded.hash);
  const report = explain(snapshot, { method: args.method, url: args.url, user: args.user, headers: args.headers });
  io.stdout(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return 0;
}

function parse(argv: readonly string[], env: NodeJS.ProcessEnv): Args {
  const positional: string[] = [];
  const headers: IncomingHttpHeaders = {};
  let user: string | undefined;
  let file: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--json') {
      json = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (!['-u', '--user', '-H', '--header', '-c', '--config'].includes(name)) throw new UsageError(`unknown option "${arg}"`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined || value === '') throw new UsageError(`${name} needs a value`);
    if (name === '-u' || name === '--user') user = value;
    else if (name === '-c' || name === '--config') file = value;
    else if (!addHeaderLine(headers, value)) throw new UsageError(`-H takes 'name: value', not "${value}"`);
  }
  if (positional.length !== 2) throw new UsageError('give a METHOD and a URL, such as: ficus explain GET /catalog -u alice');
  const [method, url] = positional as [string, string];
  if (!/^[A-Za-z]+$/.test(method)) throw new UsageError(`"${method}" is not an HTTP method`);
  return { method: method.toUpperCase(), url, user, headers, file: file ?? (env.FICUS_CONFIG || 'routes.yaml'), json };
}

/** The report as `key: value` lines, in the order a request meets them (SPEC §6). */
export function formatReport(report: ExplainReport): string {
  const lines: string[] = [`request: ${report.request}`];
  if (report.host !== '') lines.push(`host: ${report.host}`);
  if (report.user !== '') lines.push(`user: ${report.user}`);
  if (report.route !== null || report.respond !== 400) {
    lines.push(`cohorts: ${report.cohorts.join(', ') || 'none'}`, `toggles: ${report.toggles.join(',') || 'none'}`);
  }
  for (const b of report.buckets) {
    lines.push(`bucket: ${b.bucket} for ${b.of} (seed "${b.seed}"): ${b.inside ? 'inside' : 'outside'} ${b.percent} %`);
  }
  for (const s of report.skipped) lines.push(`skipped: ${s.route} (needs ${s.needs})`);
  lines.push(`route: ${report.route ?? 'none'}`);
  if (report.respond !== undefined) lines.push(`respond: ${report.respond}${report.route === null ? ' (from ficus itself)' : ''}`);
  if (report.service !== undefined) lines.push(`service: ${report.service}`);
  if (report.side !== undefined) lines.push(`side: ${report.side}`);
  if (report.color !== undefined) lines.push(`color: ${report.color}${report.preview ? ' (preview)' : ''}`);
  if (report.endpoints !== undefined) lines.push(`endpoints: ${report.endpoints.join(', ') || 'none'}`);
  if (report.forward !== undefined) lines.push(`forward: ${report.forward}`);
  const shadow = report.shadow;
  if (shadow?.copied) lines.push(`shadow: ${shadow.service} (${shadow.percent} % of such requests are copied${shadow.compare ? ' and compared' : ''})`);
  for (const note of report.notes) lines.push(`note: ${note}`);
  return `${lines.join('\n')}\n`;
}
