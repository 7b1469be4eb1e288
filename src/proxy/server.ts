import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Limits } from '../config/snapshot.js';
import { HOST_VALUE } from '../routing/normalize.js';
import { closingConnections, malformedBodies, sendError } from './local-response.js';
import { closeAfterLinger, endWith, errorResponse } from './raw-response.js';
import { acceptRequestId } from './headers.js';
import { hasRequestBody } from './request-body.js';
import { requestIds } from './request-id.js';

/** How often, at most, Node's listener looks for heads that outstayed `limits.headerTimeout`. */
const HEADER_CHECK_MS = 250;

/**
 * The edge listener. Node's strict parser stays on (never `insecureHTTPParser`): ambiguous
 * framing is refused with 400 before a handler runs. Header size overflows get 431 from Node;
 * the header count limit is enforced by the handler because Node would silently truncate.
 * `onRefusal` hears the status of every answer sent before the handler runs.
 */
export function createEdgeServer(currentLimits: () => Limits, handler: (req: IncomingMessage, res: ServerResponse) => void, onRefusal: (status: number) => void): Server {
  const limits = currentLimits();
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // A connection ficus answered `Connection: close` on (a refused Host, a 413, a fault). Node
    // keeps parsing what follows and hands it over as the next request: it must never reach an
    // upstream, whose answer the client would never get.
    if (closingConnections.has(req.socket)) return;
    if (!hostIsSound(req) || !framingIsSound(req)) {
      // Through `res`, so that it stays behind any earlier pipelined response; Node closes the
      // connection after it, and any request parsed meanwhile is dropped above.
      res.shouldKeepAlive = false;
      sendError(res, 400, acceptRequestId(req.headers['x-request-id']) ?? requestIds.next(), true);
      onRefusal(400);
      return;
    }
    if (!headCountSound(req, currentLimits().maxHeaderCount)) {
      res.shouldKeepAlive = false;
      sendError(res, 431, acceptRequestId(req.headers['x-request-id']) ?? requestIds.next(), true);
      onRefusal(431);
      return;
    }
    handler(req, res);
  };
  const server = createServer(
    {
      insecureHTTPParser: false,
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headerTimeoutMs,
      // Node checks timeouts on this interval (30 s by default), which would stretch a 10 s limit
      // to 40 s. It is fixed when the listener is made, and a reload may lower the limit: a
      // quarter second holds any limit to within that, at the cost of a scan of the open
      // connections four times a second.
      connectionsCheckingInterval: Math.max(100, Math.min(HEADER_CHECK_MS, limits.headerTimeoutMs / 4)),
      requestTimeout: 0,
      keepAliveTimeout: 65_000,
      requireHostHeader: false,
      joinDuplicateHeaders: false,
    },
    onRequest,
  );
  // RFC 9110 §10.1.1: Node would answer 100 Continue before any handler ran. It is sent once the
  // body is wanted (whoever reads the request resumes it); a request refused on its head (413,
  // 404, 400…) gets its final status instead, the client never sends the body, and Node closes
  // the connection rather than guess whether the body follows.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    // No body to wait for (a GET, a Content-Length: 0): Node would close the connection after
    // any answer that no 100 preceded. Continue at once, as nginx does; nothing is uploaded.
    if (!hasRequestBody(req)) res.writeContinue();
    else {
      req.once('resume', () => {
        if (!res.headersSent) res.writeContinue();
      });
    }
    onRequest(req, res);
  });
  server.maxHeadersCount = 0;
  // A CONNECT never reaches the request handler: without this listener Node would just drop
  // the connection. ficus is no forward proxy.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    endWith(socket, errorResponse(405, requestIds.next()));
    onRefusal(405);
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    // Bytes after a request that is still being answered (data after `Connection: close`, a
    // malformed request pipelined behind it): that request's answer goes out whole, never
    // overtaken by a 400, and the connection closes after it; nothing more is read. A request
    // whose own body is malformed is not complete: it gets the 400 below.
    const pending = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (pending != null && pending.req.complete && !pending.writableFinished && socket.writable) {
      socket.pause();
      // A request queued behind whose own body is what is malformed: it is answered 400 in its
      // turn (handler.ts), never forwarded with a body that can no longer end.
      const parsing = (socket as { parser?: { incoming?: IncomingMessage | null } | null }).parser?.incoming;
      if (parsing != null && parsing !== pending.req && !parsing.complete) malformedBodies.add(parsing);
      // No 400 is sent, so none is counted among the edge's answers.
      closeAfterQueued(socket, pending);
      return;
    }
    if (!socket.writable || (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    // No request was read, so there is no id to carry on: the answer gets a fresh one to quote.
    endWith(socket, errorResponse(status, requestIds.next()));
    onRefusal(status);
  });
  return server;
}

/**
 * Ends `socket` once the last response queued on it is out. Node's own 'finish' listener runs
 * first and hands the socket to the next pipelined response, whose request is forwarded at that
 * moment: ending the socket after `res` alone would forward it and throw its answer away.
 */
function closeAfterQueued(socket: Duplex, res: ServerResponse): void {
  res.once('finish', () => {
    const next = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (next != null && next !== res && !next.writableFinished) return closeAfterQueued(socket, next);
    // Paused, the socket would never read its client's FIN: it is closed after the linger.
    socket.end();
    closeAfterLinger(socket);
  });
}

/**
 * RFC 9112 §3.2: an HTTP/1.1 request without Host, with more than one Host line, or with a Host
 * that is no host[:port] gets 400. Node keeps only the first of several, so the raw lines are
 * counted: an upstream or a log must never see a host the routing did not.
 */
export function hostIsSound(req: IncomingMessage): boolean {
  const host = req.headers.host;
  if (host === undefined) return !(req.httpVersionMajor === 1 && req.httpVersionMinor >= 1);
  if (!HOST_VALUE.test(host)) return false;
  const raw = req.rawHeaders;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++count > 1) return false;
  }
  return true;
}

/**
 * A head with more fields than `limits.maxHeaderCount`: 431, as one over `maxHeaderBytes` gets
 * from Node. Checked here rather than by Node (`maxHeadersCount`), which would silently drop the
 * fields past the limit instead of refusing the request; read per request, so a reload applies.
 */
export function headCountSound(req: IncomingMessage, maxHeaderCount: number): boolean {
  return req.rawHeaders.length / 2 <= maxHeaderCount;
}

/**
 * RFC 9112 §6.1: Transfer-Encoding on an HTTP/1.0 request is faulty framing; the server must
 * refuse it and close, since a 1.0 hop before it may have read the body differently. Node
 * accepts it. One header lookup, and only for 1.0 requests.
 */
function framingIsSound(req: IncomingMessage): boolean {
  return (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) || req.headers['transfer-encoding'] === undefined;
}
