import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { AuditLog } from '../observe/audit.js';
import { systemClock } from '../observe/clock.js';
import { editRoutesFile, type EditRequest } from './edit.js';
import { formatIssue } from './issues.js';
import { besideConfig } from './paths.js';

/**
 * `ficus cutover`, `weight`, `toggle`: one value changed in the routes file, checked before it
 * is written, printed as a one-line diff, and recorded in the file's audit log. Exit 1 (file
 * untouched) when the target does not exist or the result would be invalid.
 */
export async function runEdit(file: string, request: EditRequest): Promise<number> {
  const outcome = await editRoutesFile(file, request);
  const { command, target } = request;
  if (outcome.result === 'refused') {
    for (const issue of outcome.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    process.stderr.write(`ficus: ${outcome.message}\n`);
    return 1;
  }
  const { change } = outcome;
  if (outcome.result === 'unchanged') {
    process.stdout.write(`${file}:${change.line}: ${outcome.reason}; nothing to change\n`);
    return 0;
  }
  process.stdout.write(`${file}:${change.line}: ${change.key}: ${change.fromText ?? '(not set)'} → ${change.toText}\n`);
  // `ficus toggle NAME 30` reads as "on for 30 %": say so when the switch itself is off.
  if (command === 'toggle' && change.key === 'percent' && outcome.config.toggles?.[target]?.enabled === false) {
    process.stdout.write(`note: toggle ${target} is switched off (enabled: false), so it stays off for everyone; \`ficus toggle ${target} on\` switches it on for ${change.toText} % of users\n`);
  }

  const audit = new AuditLog(() => besideConfig(resolve(file), outcome.config.auditLog), {
    clock: systemClock,
    // The edit is made; a missing audit record is worth a warning, not a failed command.
    onError: (error, path) => process.stderr.write(`ficus: warning: could not append to the audit log ${path} (${error.code ?? error.message})\n`),
  });
  let by: string | undefined;
  try {
    by = userInfo().username;
  } catch {
    // No user name for this uid (a container): the record is still worth making.
  }
  await audit.record('edit', { command, target, key: change.path, from: change.from, to: change.to, file: resolve(file), ...(by ? { by } : {}) });
  return 0;
}
