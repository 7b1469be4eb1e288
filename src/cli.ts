import { resolve } from 'node:path';
import { startApp } from './app.js';
import { formatIssue } from './config/issues.js';
import { loadRoutesFile } from './config/load.js';
import { routesJsonSchema } from './config/schema.js';

const USAGE = `ficus — a strangler-facade reverse proxy

usage:
  ficus start [-c routes.yaml]     run the proxy (config: -c, else $FICUS_CONFIG, else ./routes.yaml)
  ficus check [file]               validate a routes file; every error as file:line:col path: message
  ficus status [--admin URL]       the running proxy's routes, services and endpoint health
  ficus schema                     print the JSON Schema of routes.yaml
  ficus demo                       start a demo monolith, a new service and the proxy
`;

interface Parsed {
  positional: string[];
  flags: Map<string, string[]>;
}

function parseArgs(argv: string[], withValue: readonly string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg.startsWith('-') && arg !== '-') {
      const [name, inline] = arg.split('=', 2) as [string, string | undefined];
      const value = withValue.includes(name) ? (inline ?? argv[++i]) : 'true';
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      flags.set(name, [...(flags.get(name) ?? []), value]);
    } else {
      positional.push(arg);
    }
  }
  return { positional, flags };
}

class UsageError extends Error {}

function configPath(parsed: Parsed): string {
  return parsed.flags.get('-c')?.at(-1) ?? parsed.flags.get('--config')?.at(-1) ?? parsed.positional[0] ?? process.env.FICUS_CONFIG ?? 'routes.yaml';
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start': {
      const file = configPath(parseArgs(rest, ['-c', '--config']));
      const app = await startApp({ configFile: resolve(file) });
      const stop = () => void app.drain().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      process.on('SIGHUP', () => void app.reload('signal'));
      return -1;
    }
    case 'check': {
      const file = configPath(parseArgs(rest, ['-c', '--config']));
      const loaded = await loadRoutesFile(file);
      if (!loaded.ok) {
        for (const issue of loaded.issues) process.stdout.write(`${formatIssue(issue)}\n`);
        return 1;
      }
      const { config } = loaded;
      process.stdout.write(`${file}: ok (${config.routes.length} routes, ${Object.keys(config.services).length} services, hash ${loaded.hash})\n`);
      return 0;
    }
    case 'schema':
      process.stdout.write(`${JSON.stringify(routesJsonSchema(), null, 2)}\n`);
      return 0;
    case 'status': {
      const parsed = parseArgs(rest, ['--admin']);
      const admin = parsed.flags.get('--admin')?.at(-1) ?? process.env.FICUS_ADMIN ?? 'http://127.0.0.1:9901';
      const response = await fetch(new URL('/status', admin));
      process.stdout.write(`${JSON.stringify(await response.json(), null, 2)}\n`);
      return response.ok ? 0 : 1;
    }
    case 'demo': {
      const { runDemo } = await import('./demo/demo.js');
      await runDemo();
      return -1;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
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
      for (const issue of error.issues) process.stderr.write(`${formatIssue(issue)}\n`);
      process.stderr.write('ficus: configuration is invalid; not starting\n');
      process.exitCode = 1;
    } else {
      process.stderr.write(`ficus: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
