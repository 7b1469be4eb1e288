import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { invoicesAnswer } from './invoices.js';

/** A stand-in upstream the demo runs on a port that routes.yaml names. */
export interface DemoService {
  readonly name: string;
  readonly legacy: boolean;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface DemoServiceSpec {
  name: string;
  legacy: boolean;
  host: string;
  port: number;
}

/** Thrown when a demo service cannot bind its port; carries what the message needs. */
export class PortInUseError extends Error {
  readonly code = 'FICUS_DEMO_PORT_IN_USE';
  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    super(`${host}:${port} is already in use`);
  }
}

/**
 * Starts a tiny HTTP server that says plainly who answered: the monolith's pages when `legacy`,
 * otherwise a "new service" greeting. Every answer names the service and echoes the request id
 * ficus attached, so a newcomer can see the facade at work with nothing but curl.
 */
export async function startDemoService(spec: DemoServiceSpec): Promise<DemoService> {
  const server = createServer(spec.legacy ? monolith(spec.name) : newService(spec.name));
  server.keepAliveTimeout = 5_000;
  try {
    server.listen(spec.port, spec.host);
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error))]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new PortInUseError(spec.host, spec.port);
    throw error;
  }
  return { ...spec, close: () => closeServer(server) };
}

async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = once(server, 'close');
  server.close();
  server.closeAllConnections();
  await closed;
}

/** The part of the monolith a new service rewrites, by its name: `catalog-v2` rewrites `catalog`. */
export function rewrittenPart(service: string): string {
  return service.replace(/[-_.]?v\d+$/i, '');
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const PAGES: readonly { prefix: string; text: string }[] = [
  { prefix: '/catalog', text: 'The product catalog, rendered server-side the way it has been since 2009.' },
  { prefix: '/account', text: 'Account settings, one very long form.' },
  { prefix: '/search', text: 'Search results, the slow way: a LIKE query over everything.' },
];

function monolith(name: string): Handler {
  return (req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const intro = `Hello from the legacy monolith (service "${name}").`;
    if (path === '/api/orders' || path.startsWith('/api/orders/')) {
      return reply(res, 200, name, 'application/json', `${JSON.stringify({ servedBy: name, kind: 'legacy monolith', orders: [{ id: 1001, total: '42.00' }, { id: 1002, total: '17.50' }] })}\n`);
    }
    const invoices = invoicesAnswer(path, false);
    if (invoices) return reply(res, invoices.status, name, 'application/json', invoices.body);
    const page = path === '/' ? { text: 'The home page. Try /catalog, /invoices/1001 or /api/orders.' } : PAGES.find((p) => path === p.prefix || path.startsWith(`${p.prefix}/`));
    if (!page) return reply(res, 404, name, 'text/plain; charset=utf-8', `${intro}\nThere is no page at ${path}.\n`);
    reply(res, 200, name, 'text/plain; charset=utf-8', `${intro}\n${req.method} ${req.url}: ${page.text}\n${trace(req)}`);
  };
}

/** The path of a new service's fault switch: `POST` breaks it, `DELETE` mends it. */
export const FAULT_PATH = '/fault';

/**
 * A new service, with a fault switch so that the demo can show a canary being ejected: once
 * `POST /fault` has been called, every other request gets a 500 until `DELETE /fault`. One
 * named as a rewrite of invoices (`invoices-v2`) answers the monolith's invoice API, for a
 * shadow route to compare.
 */
function newService(name: string): Handler {
  let faulty = false;
  const rewritesInvoices = rewrittenPart(name) === 'invoices';
  return (req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    if (path === FAULT_PATH && (req.method === 'POST' || req.method === 'DELETE')) {
      faulty = req.method === 'POST';
      const says = faulty ? `${name} now answers 500 to every request (DELETE ${FAULT_PATH} mends it)` : `${name} is healthy again`;
      return reply(res, 200, name, 'text/plain; charset=utf-8', `${says}\n`);
    }
    if (faulty) return reply(res, 500, name, 'text/plain; charset=utf-8', `${name} is failing (its fault switch is on: DELETE ${FAULT_PATH} mends it)\n`);
    const invoices = rewritesInvoices ? invoicesAnswer(path ?? '/', true) : undefined;
    if (invoices) return reply(res, invoices.status, name, 'application/json', invoices.body);
    reply(res, 200, name, 'text/plain; charset=utf-8', `Hello from ${name}, a new service.\n${req.method} ${req.url}: answered by the new code, not the monolith.\n${trace(req)}`);
  };
}

function trace(req: IncomingMessage): string {
  return `(request id ${String(req.headers['x-request-id'] ?? '-')}, forwarded for ${String(req.headers['x-forwarded-for'] ?? '-')})\n`;
}

/** The response header in which every stand-in names itself. */
export const SERVED_BY = 'x-served-by';

function reply(res: ServerResponse, status: number, name: string, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), [SERVED_BY]: name });
  res.end(body);
}
