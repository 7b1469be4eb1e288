import type { ServerResponse } from 'node:http';
import { STATUS_TEXT } from './errors.js';

/**
 * A response ficus writes itself. Bodies are JSON naming no internals: the client learns the
 * status and the request id to quote, never an upstream address or an error message.
 */
export function sendError(res: ServerResponse, status: number, requestId: string, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify({ error: STATUS_TEXT[status] ?? 'error', status, requestId });
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

export function sendConfigured(res: ServerResponse, status: number, body: string, headers: Readonly<Record<string, string>>): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
