import { STATUS_CODES } from 'node:http';
import type { RespondAction } from './plan.js';
import { STATUS_TEXT } from './errors.js';

/**
 * Whole responses written straight to a socket that the HTTP server has given up (an upgrade):
 * the same answers local-response.ts sends through a ServerResponse, always closing.
 */
export function responseHead(status: number, fields: readonly string[], reason?: string): string {
  let head = `HTTP/1.1 ${status} ${reason || STATUS_CODES[status] || ''}\r\n`;
  for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/** The same answer as local-response's sendError, written straight to a socket the HTTP server gave up. */
export function errorResponse(status: number, requestId: string, extraHeaders?: readonly string[]): string {
  const body = `{"error":"${STATUS_TEXT[status] ?? 'error'}","status":${status},"requestId":${JSON.stringify(requestId)}}`;
  const fields = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store', 'x-request-id', requestId, 'connection', 'close'];
  if (extraHeaders !== undefined) fields.push(...extraHeaders);
  return responseHead(status, fields) + body;
}

export function configuredResponse(action: RespondAction, extraHeaders: readonly string[] | undefined): Buffer {
  const body = Buffer.from(action.body);
  const merged: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
  for (const [name, value] of Object.entries(action.headers)) merged[name.toLowerCase()] = value;
  const bodyless = action.status === 204 || action.status === 304;
  if (!bodyless) merged['content-length'] = String(body.length);
  merged.connection = 'close';
  const fields = Object.entries(merged).flat();
  if (extraHeaders !== undefined) fields.push(...extraHeaders);
  const head = Buffer.from(responseHead(action.status, fields), 'latin1');
  return bodyless ? head : Buffer.concat([head, body]);
}

