import type { IncomingMessage } from 'node:http';

/**
 * What kind of upgrade a request asks for. Only a WebSocket handshake (RFC 6455 §4.1: GET,
 * HTTP/1.1) is tunnelled; any other upgrade (h2c…) is served as the plain request it also is
 * (RFC 9110 §7.8 lets a server ignore Upgrade).
 */
export function isWebSocket(req: IncomingMessage): boolean {
  if (req.method !== 'GET' || req.httpVersion !== '1.1') return false;
  const upgrade = req.headers.upgrade;
  return upgrade !== undefined && upgrade.split(',').some((token) => token.trim().toLowerCase() === 'websocket');
}

/** Fields an upgrade adds to a request; dropped when the request is served as plain HTTP. */
const UPGRADE_FIELDS = new Set(['upgrade', 'http2-settings']);

/** The request head again, without Upgrade, HTTP2-Settings and the Connection tokens naming them. */
export function plainHead(req: IncomingMessage): string {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (UPGRADE_FIELDS.has(lower)) continue;
    let value = raw[i + 1] as string;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((token) => token.trim())
        .filter((token) => token !== '' && !UPGRADE_FIELDS.has(token.toLowerCase()))
        .join(', ');
      if (value === '') continue;
    }
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

