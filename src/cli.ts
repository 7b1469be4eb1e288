import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { EditCommand } from './config/edit.js';
import { formatIssue, type ConfigIssue } from './config/issues.js';

// Commands import what they need when they run: `ficus --help` or `ficus status` should not pay
// for loading the proxy.

const USAGE = `ficus: a strangler-facade reverse proxy

usage:
  ficus start [-c FILE]                 run the proxy
  ficus check [FILE]                    validate a routes file; every error as FILE:LINE:COL path: message
  ficus explain METHOD URL [-u USER] [-H 'name: value']... [-c FILE] [--json]
                                        which route, side, colour and endpoint would serve a request, and why
  ficus status [--admin URL] [--json]   the running proxy's routes, services and endpoint health
  ficus cutover SERVICE blue|green [-c FILE]
                                        switch a blue/green service's active colour
  ficus weight ROUTE PCT [-c FILE]      set the share of users (0-100) a route's canary gets
  ficus toggle NAME on|off|PCT [-c FILE]
                                        switch a toggle on or off, or set its percentage of users
  ficus schema                          print the JSON Schema of routes.yaml (for editor completion)
  ficus demo [-c FILE]                  a demo monolith, a new service and the proxy, with a short tour
  ficus --help | --version

The routes file is -c FILE (or --config FILE), else $FICUS_CONFIG, else ./routes.yaml;
\`ficus demo\` uses the routes.yaml that ships with ficus unless -c is given.
cutover, weight and toggle edit the routes file in place (comments and layout kept), after
checking the result; a running proxy that watches the file picks the change up.
The admin API is --admin URL, else $FICUS_ADMIN, else http://127.0.0.1:9901.
`;

const DEFAULT_ADMIN = 'http://127.0.0.1:9901';

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  flags: Map<string, string>;
}

/** Strict option parsing: an option the command does not know is a usage error, not ignored. */
function parseArgs(command: string, argv: readonly string[], withValue: readonly string[], boolean: readonly string[] = []): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (withValue.includes(name)) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === '') throw new UsageError(`${name} needs a value`);
      flags.set(name, value);
    } else if (boolean.includes(name) && eq === -1) {
      flags.set(name, 'true');
    } else {
      throw new UsageError(`unknown option "${arg}" for "ficus ${command}"`);
    }
  }
  return { positional, flags };
}

/** SPEC §6: -c FILE, else $FICUS_CONFIG, else ./routes.yaml. A positional FILE counts as -c. */
function configPath(command: string, argv: readonly string[]): string {
  const parsed = parseArgs(command, argv, ['-c', '--config']);
  const given = parsed.flags.get('-c') ?? parsed.flags.get('--config');
  if (parsed.positional.length > 1 || (given !== undefined && parsed.positional.length > 0)) {
    throw new UsageError(`"ficus ${command}" takes one routes file`);
  }
  return given ?? parsed.positional[0] ?? (process.env.FICUS_CONFIG || 'routes.yaml');
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  // A report piped into `head` that stops reading is no failure of the command's (the running
  // proxy's log keeps its own rule: lines it cannot write are dropped and counted).
  if (command !== 'start' && command !== 'demo') {
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      // The reader is gone: write nothing more, and end with the command's own status (a
      // `ficus check` that found errors still fails under `set -o pipefail`).
      process.stdout.write = (() => true) as typeof process.stdout.write;
    });
  }
  if (rest.includes('--help') || rest.includes('-h')) return help(0);
  switch (command) {
    case 'start': {
      const file = configPath('start', rest);
      // Installed before anything else: SIGHUP's default action is to terminate the process. A
      // SIGHUP while starting is answered once the proxy runs.
      const hup: { reload?: () => void; early: boolean } = { early: false };
      process.on('SIGHUP', () => (hup.reload ? hup.reload() : (hup.early = true)));
      // Without a listener, Node answers SIGUSR1 (nginx's "reopen the logs") by opening its
      // inspector on 127.0.0.1:9229, through which anyone who reaches it runs code in the proxy.
      process.on('SIGUSR1', () => process.stderr.write('ficus: SIGUSR1 ignored (ficus logs to stdout: there is no log file to reopen)\n'));
      // So are SIGTERM and SIGINT, by one listener each for the whole run: as PID 1 (a container
      // without --init) a signal without one is ignored, and `docker stop` would wait for its
      // SIGKILL; elsewhere it would kill the process with 143 rather than exit 0. One that comes
      // while starting drains as soon as the proxy runs. (A listener removed and another added
      // would lose a signal that came in between: the proxy would never stop.)
      const stopping: { stop?: (signal: NodeJS.Signals) => void; early?: NodeJS.Signals } = {};
      const onStop = (signal: NodeJS.Signals) => {
        if (stopping.stop) return stopping.stop(signal);
        // A second Ctrl-C means "now" while starting too (a start stuck reading its file from a
        // pipe or a hung mount). Re-raised with no listener, so that the default action ends the
        // process even while a thread is stuck reading (process.exit would wait for it for ever).
        if (stopping.early !== undefined && signal === 'SIGINT') {
          // The kernel ignores a signal PID 1 sends itself with no listener: nothing can end it now.
          if (process.pid === 1) return void process.stderr.write('ficus: as PID 1, ficus cannot stop before it has started; it stops once started (run the container with --init for Ctrl-C to stop it at once)\n');
          process.stderr.write('ficus: stopping now, before it finished starting\n');
          process.removeListener('SIGINT', onStop);
          process.kill(process.pid, 'SIGINT');
          return;
        }
        if (stopping.early !== undefined) return;
        stopping.early = signal;
        process.stderr.write(`ficus: ${signal}: stopping once started${signal === 'SIGINT' ? ' (Ctrl-C again to stop now)' : ''}\n`);
      };
      process.on('SIGTERM', onStop);
      process.on('SIGINT', onStop);
      const { startApp } = await import('./app.js');
      const app = await startApp({ configFile: resolve(file) });
      hup.reload = () => void app.reload('signal').catch((error: Error) => process.stderr.write(`ficus: the reload failed: ${error.message}\n`));
      if (hup.early) hup.reload();
      stopping.stop = stopper(() => app.drain());
      if (stopping.early !== undefined) stopping.stop(stopping.early);
      return -1;
    }
    case 'check':
      return check(configPath('check', rest));
    case 'explain':
      return (await import('./explain/command.js')).runExplain(rest);
    case 'cutover':
    case 'weight':
    case 'toggle':
      return edit(command, rest);
    case 'schema': {
      if (parseArgs('schema', rest, []).positional.length > 0) throw new UsageError('"ficus schema" takes no arguments');
      const { routesJsonSchema } = await import('./config/schema.js');
      process.stdout.write(`${JSON.stringify(routesJsonSchema(), null, 2)}\n`);
      return 0;
    }
    case 'status': {
      const parsed = parseArgs('status', rest, ['--admin'], ['--json']);
      if (parsed.positional.length > 0) throw new UsageError('"ficus status" takes no arguments (use --admin URL)');
      const admin = parsed.flags.get('--admin') ?? (process.env.FICUS_ADMIN || DEFAULT_ADMIN);
      // `127.0.0.1:9901` parses as a URL whose scheme is "127.0.0.1:".
      if (!URL.canParse(admin) || !/^https?:$/.test(new URL(admin).protocol)) throw new UsageError(`the admin API is a URL such as ${DEFAULT_ADMIN}, not "${admin}"`);
      const { status } = await import('./admin/status-command.js');
      return status(admin, parsed.flags.has('--json'));
    }
    case 'demo': {
      const parsed = parseArgs('demo', rest, ['-c', '--config']);
      if (parsed.positional.length > 0) throw new UsageError('"ficus demo" takes no arguments (use -c FILE for another routes file)');
      const given = parsed.flags.get('-c') ?? parsed.flags.get('--config');
      const { runDemo } = await import('./demo/demo.js');
      const demo = await runDemo({ configFile: given === undefined ? undefined : resolve(given) });
      process.on('SIGHUP', () => void demo.app.reload('signal'));
      const stop = stopper(() => demo.stop());
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      return -1;
    }
    case '--version':
    case '-v':
      process.stdout.write(`ficus ${version()}\n`);
      return 0;
    case undefined:
      return help(2);
    case 'help':
    case '--help':
    case '-h':
      return help(0);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function help(code: number): number {
  (code === 0 ? process.stdout : process.stderr).write(USAGE);
  return code;
}

async function check(file: string): Promise<number> {
  const { loadRoutesFile } = await import('./config/load.js');
  const loaded = await loadRoutesFile(file);
  if (!loaded.ok) {
    for (const issue of loaded.issues) process.stdout.write(`${formatIssue(issue)}\n`);
    return 1;
  }
  const { config } = loaded;
  process.stdout.write(`${file}: ok (${config.routes.length} routes, ${Object.keys(config.services).length} services, hash ${loaded.hash})\n`);
  return 0;
}

const EDIT_USAGE: Readonly<Record<EditCommand, string>> = {
  cutover: 'ficus cutover SERVICE blue|green [-c FILE]',
  weight: 'ficus weight ROUTE PCT [-c FILE]',
  toggle: 'ficus toggle NAME on|off|PCT [-c FILE]',
};

/** `cutover`, `weight`, `toggle`: the arguments; config/edit-command.ts does the rest. */
async function edit(command: EditCommand, argv: readonly string[]): Promise<number> {
  const parsed = parseArgs(command, argv, ['-c', '--config']);
  const [target, value, ...extra] = parsed.positional;
  if (target === undefined || value === undefined || extra.length > 0) throw new UsageError(`usage: ${EDIT_USAGE[command]}`);
  const file = parsed.flags.get('-c') ?? parsed.flags.get('--config') ?? (process.env.FICUS_CONFIG || 'routes.yaml');
  const { runEdit } = await import('./config/edit-command.js');
  return runEdit(file, { command, target, value });
}

/**
 * SIGTERM/SIGINT: drain, then exit 0 (SPEC §1.7). A second Ctrl-C means "now": exit at once,
 * as an impatient person at a terminal expects.
 */
function stopper(stop: () => Promise<void>): (signal: NodeJS.Signals) => void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      if (signal === 'SIGINT') {
        process.stderr.write('ficus: stopping now, without waiting for requests in flight\n');
        process.exit(1);
      }
      return;
    }
    stopping = true;
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`ficus: error while stopping: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      },
    );
  };
  return onSignal;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function describeError(error: unknown): string {
  const err = error as NodeJS.ErrnoException & { key?: string; host?: string; port?: number };
  if (err?.key !== undefined) {
    const where = `cannot listen on ${err.host}:${err.port}`;
    const key = ` (${err.key === 'admin' ? 'admin' : 'listen'} in the routes file)`;
    if (err.code === 'EADDRINUSE') return `${where}: the port is already in use${key}`;
    if (err.code === 'EACCES') return `${where}: permission denied (ports below 1024 need privileges)${key}`;
    if (err.code === 'EADDRNOTAVAIL') return `${where}: no network interface of this machine has that address${key}`;
    if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return `${where}: the host name does not resolve (${err.code})${key}`;
    return `${where}: ${err.message}${key}`;
  }
  return error instanceof Error ? error.message : String(error);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`ficus: ${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (error && typeof error === 'object' && 'issues' in error && Array.isArray(error.issues)) {
      for (const issue of error.issues as ConfigIssue[]) process.stderr.write(`${formatIssue(issue)}\n`);
      process.stderr.write('ficus: configuration is invalid; not starting\n');
      process.exitCode = 1;
    } else {
      process.stderr.write(`ficus: ${describeError(error)}\n`);
      process.exitCode = 1;
    }
  },
);
