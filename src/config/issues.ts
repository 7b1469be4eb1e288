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
  return issue.path ? `${where} ${issue.path}: ${issue.message}` : `${where} ${issue.message}`;
}

/** Raised when a routes file cannot become a snapshot; carries every issue, not just the first. */
export class ConfigError extends Error {
  readonly code = 'FICUS_CONFIG_INVALID';
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(`${issues.length} error(s) in configuration:\n${issues.map(formatIssue).join('\n')}`);
    this.name = 'ConfigError';
  }
}
