import { dirname, isAbsolute, resolve } from 'node:path';

/**
 * A file named in routes.yaml (`auditLog`, `stateFile`): a relative path is relative to the
 * routes file, wherever ficus was started. Undefined when not configured.
 */
export function besideConfig(configFile: string, path: string | undefined): string | undefined {
  if (path === undefined || path === '') return undefined;
  return isAbsolute(path) ? path : resolve(dirname(configFile), path);
}
