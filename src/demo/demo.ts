import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isNode, LineCounter, parseDocument } from 'yaml';
import { startApp, type RunningApp } from '../app.js';
import { compile } from '../config/compile.js';
import { ConfigError } from '../config/issues.js';
import { loadRoutesFile } from '../config/load.js';
import type { Snapshot } from '../config/snapshot.js';
import { consoleLogger, paint } from './console.js';
import { standIn } from './migration-examples.js';
import { PortInUseError, startDemoService, type DemoService } from './services.js';
import { reachableUrl, tour } from './tour.js';

export interface DemoOptions {
  /** The routes file; by default the package's own routes.yaml, wherever ficus is run from. */
  configFile?: string;
  write?: (text: string) => void;
  color?: boolean;
}

export interface RunningDemo {
  readonly app: RunningApp;
  readonly services: readonly DemoService[];
  /** Drains the proxy (requests in flight finish), then stops the demo services. */
  stop(): Promise<void>;
}

/** The repo's routes.yaml, found from this module rather than the working directory. */
export function defaultDemoConfig(): string {
  return fileURLToPath(new URL('../../routes.yaml', import.meta.url));
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * `ficus demo`: a stand-in for every service of the routes file that lives on this machine
 * (the monolith for legacy services, a "new service" for the others), then the real proxy on
 * that same file, watched so that edits take effect live, then the tour.
 */
export async function runDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  const file = options.configFile ?? defaultDemoConfig();
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const style = paint(options.color ?? (process.stdout.isTTY === true && !process.env.NO_COLOR));

  const loaded = await loadRoutesFile(file);
  if (!loaded.ok) throw new ConfigError(loaded.issues);
  const text = await readFile(file, 'utf8');
  const snapshot = compile(loaded.config, file, loaded.hash);
  const { local, remote } = plan(snapshot);

  const services: DemoService[] = [];
  const stopServices = () => Promise.all(services.map((s) => s.close()));
  try {
    for (const spec of local) services.push(await startDemoService(spec));
  } catch (error) {
    await stopServices();
    if (error instanceof PortInUseError) {
      const owner = local.find((s) => s.port === error.port)?.name ?? '?';
      throw new Error(
        `port ${error.port} is already in use, so the demo cannot start service "${owner}" there (${where(text, file, ['services', owner])}).\n` +
          'Stop whatever is using it (perhaps another demo), or give the service another port in the routes file.',
      );
    }
    throw error;
  }

  let app: RunningApp;
  try {
    app = await startApp({ configFile: file, logger: consoleLogger(write, style) });
  } catch (error) {
    await stopServices();
    const err = error as NodeJS.ErrnoException & { port?: number };
    if (err.code === 'EADDRINUSE') {
      const key = err.port === snapshot.admin.port ? 'admin' : 'listen';
      const role = key === 'admin' ? "the admin listener's" : "the proxy's";
      throw new Error(
        `port ${err.port ?? '?'} is already in use, so ${role} listener cannot start (${where(text, file, [key])}).\n` +
          'Stop whatever is using it (perhaps another ficus), or change the port in the routes file.',
      );
    }
    throw error;
  }

  const proxyUrl = reachableUrl(app.proxyUrl);
  const adminUrl = reachableUrl(app.adminUrl);
  write(tour({ snapshot, text, cwd: process.cwd(), proxyUrl, adminUrl, services, remote, style }));

  let stopping: Promise<void> | undefined;
  return {
    app,
    services,
    stop() {
      stopping ??= (async () => {
        write('\nficus demo: draining, then stopping the demo services…\n');
        await app.drain();
        await stopServices();
        write('ficus demo: stopped. Thanks for trying ficus!\n');
      })();
      return stopping;
    },
  };
}

interface Planned {
  name: string;
  legacy: boolean;
  host: string;
  port: number;
}

/**
 * Which endpoints the demo can stand in for: those on loopback, one server per port. Each
 * colour of a blue/green service gets its own stand-in, named `service-colour`, so that a
 * cutover or a preview shows in who answers.
 */
function plan(snapshot: Snapshot): { local: Planned[]; remote: string[] } {
  const local: Planned[] = [];
  const remote: string[] = [];
  const groups = [...snapshot.services.values()].flatMap((service) =>
    service.colours ? [service.colours.blue, service.colours.green].map((group) => ({ group, name: standIn(service.name, group.colour) })) : [{ group: service, name: service.name }],
  );
  for (const { group, name } of groups) {
    for (const endpoint of group.endpoints) {
      const url = new URL(endpoint.origin);
      // The stand-ins speak plain HTTP; anything else is left to the operator to run.
      if (!LOCAL_HOSTS.has(url.hostname) || url.protocol !== 'http:') {
        if (!remote.includes(name)) remote.push(name);
        continue;
      }
      const port = Number(url.port || 80);
      if (local.some((s) => s.port === port)) continue;
      local.push({ name, legacy: group.legacy, host: url.hostname.replace(/^\[|\]$/g, ''), port });
    }
  }
  return { local, remote };
}

function where(text: string, file: string, path: string[]): string {
  const lines = new LineCounter();
  const node = parseDocument(text, { lineCounter: lines }).getIn(path, true);
  if (!isNode(node) || !node.range) return file;
  const { line, col } = lines.linePos(node.range[0]);
  return `${file}:${line}:${col}`;
}
