/** One problem found in a routes file, located for humans and tools: `file:line:col path: message`. */
export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  /** Dotted key path such as `routes.3.match.path`; empty for the document itself. */
  path: string;
  message: string;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = `${issue.file}:${issue.line}:${issue.col}`;
  // One line per issue (SPEC §6), and nothing a terminal would act on: a key the file wrote with
  // a line break or an escape sequence is shown escaped.
  const path = visible(issue.path);
  const message = visible(issue.message);
  return path ? `${where} ${path}: ${message}` : `${where} ${message}`;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

function visible(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Raised when a routes file cannot become a snapshot; carries every issue, not just the first. */
export class ConfigError extends Error {
  readonly code = 'FICUS_CONFIG_INVALID';
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(`${issues.length} error(s) in configuration:\n${issues.map(formatIssue).join('\n')}`);
    this.name = 'ConfigError';
  }
}
