import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RespondAction } from './plan.js';
import { configuredAnswer, errorAnswer } from './local-response.js';

/**
 * Whole responses written straight to a socket that the HTTP server has given up (an upgrade):
 * the same answers local-response.ts sends through a ServerResponse, always closing.
 */
export function responseHead(status: number, fields: readonly string[], reason?: string): string {
  let head = `HTTP/1.1 ${status} ${reason || STATUS_CODES[status] || ''}\r\n`;
  for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/** ficus's own error answer (local-response's), written straight to a socket the HTTP server gave up. */
export function errorResponse(status: number, requestId: string, extraHeaders?: readonly string[]): string {
  const { fields, body } = errorAnswer(status, requestId);
  fields.push('connection', 'close');
  if (extraHeaders !== undefined) fields.push(...extraHeaders);
  return responseHead(status, fields) + body;
}

/** A `respond` route's answer (local-response's), closing the connection after it. */
export function configuredResponse(action: RespondAction, extraHeaders: readonly string[] | undefined): Buffer {
  const { fields, body } = configuredAnswer(action);
  const head = Buffer.from(responseHead(action.status, [...fields, 'connection', 'close', ...(extraHeaders ?? [])]), 'latin1');
  return action.status === 204 || action.status === 304 ? head : Buffer.concat([head, body]);
}

/** How long a client may keep its side open after ficus's last answer on a connection it gave up. */
const LINGER_MS = 2_000;

/**
 * Writes a last answer and ends the connection. A socket the HTTP server gave up (an upgrade, a
 * CONNECT, a parse error) is out of reach of its `closeAllConnections()`, and allows half-open
 * connections: a client that never closes its side would hold it, and a drain, for ever. It
 * gets a moment to read the answer (an immediate destroy could reset it away), then is closed.
 */
export function endWith(socket: Duplex, answer: string | Buffer): void {
  socket.end(answer);
  closeAfterLinger(socket);
}

/** The last answer on a socket the HTTP server gave up is out (or on its way): the client has a moment, then it is closed. */
export function closeAfterLinger(socket: Duplex): void {
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
