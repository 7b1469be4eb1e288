import { readlink } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';

/**
 * A file named in routes.yaml (`auditLog`, `stateFile`): a relative path is relative to the
 * routes file, wherever ficus was started. Undefined when not configured.
 */
export function besideConfig(configFile: string, path: string | undefined): string | undefined {
  if (path === undefined || path === '') return undefined;
  return isAbsolute(path) ? path : resolve(dirname(configFile), path);
}

/**
 * Where each symbolic link on the way from `path` points, in order (empty when `path` is no
 * link; a dangling last hop included). At most 40 hops, as the kernel allows.
 */
export async function symlinkHops(path: string): Promise<string[]> {
  const hops: string[] = [];
  for (let at = resolve(path); hops.length < 40; ) {
    const target = await readlink(at).catch(() => undefined);
    if (target === undefined) break;
    at = resolve(dirname(at), target);
    hops.push(at);
  }
  return hops;
}
