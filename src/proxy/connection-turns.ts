import type { IncomingMessage, ServerResponse } from 'node:http';

/*
 * What a client connection's requests owe each other: a request pipelined behind another is
 * forwarded in its turn, and a drain closes a connection only after the last request read on it.
 */

/**
 * During a drain, the newest request read on each connection: only its response may close the
 * connection. Kept from the drain's start on only, so that serving costs nothing for it.
 */
const lastOnSocket = new WeakMap<object, ServerResponse>();
/** Responses a drain made say `Connection: close`. */
const closedByDrain = new WeakSet<ServerResponse>();

/**
 * Drain: every response whose head has not gone out yet, and that is the last request read on its
 * connection, says `Connection: close` (as nginx and Envoy do), so that no keep-alive client is
 * promised a connection that the drain then closes under its next request. Responses queued
 * behind it (pipelined) keep the connection until their turn.
 */
export function closeAfterCurrent(open: Iterable<ServerResponse>): void {
  // `open` keeps the order requests were read in: the last one of a connection is its newest.
  for (const res of open) lastOnSocket.set(res.req.socket, res);
  for (const res of open) {
    if (res.headersSent || lastOnSocket.get(res.req.socket) !== res || !res.shouldKeepAlive) continue;
    res.shouldKeepAlive = false;
    closedByDrain.add(res);
  }
}

/**
 * A request read behind a response the drain meant to close its connection after: that one
 * keeps the connection after all, so that this one (a plain request or an upgrade) is answered
 * in its turn.
 */
export function keepForNext(socket: object): void {
  const before = lastOnSocket.get(socket);
  if (before !== undefined && closedByDrain.has(before) && !before.headersSent) before.shouldKeepAlive = true;
}

/** A request read while the drain runs: the one before keeps the connection for it, and it is now the newest. */
export function readDuringDrain(socket: object, res: ServerResponse): void {
  keepForNext(socket);
  lastOnSocket.set(socket, res);
}

/**
 * Forwarded requests parsed on a connection and waiting for their turn behind a response still
 * going out. Past this many, the connection is not read further until one gets its turn (as
 * Node itself stops reading when responses back up), so a client that pipelines without end
 * costs bounded memory. Below it the connection is still read, so a client that hangs up is
 * seen at once and its requests are let go.
 */
const MAX_WAITING_TURN = 32;
const waitingTurn = new WeakMap<object, number>();
const repausing = new WeakSet<object>();

/**
 * Node's own way to stop reading a connection whose responses back up (`_http_server`): the
 * `_paused` flag makes its parser pause after the current chunk, and a finished response
 * resumes both. Used the same way here, so Node's resume and ours cannot disagree.
 */
type PausableSocket = IncomingMessage['socket'] & { _paused?: boolean; parser?: { pause(): void; resume(): void } | null };

/** Runs `go` once `res`, queued behind another pipelined response, has the connection. */
export function waitForTurn(socket: PausableSocket, res: ServerResponse, go: () => void): void {
  const queued = (waitingTurn.get(socket) ?? 0) + 1;
  waitingTurn.set(socket, queued);
  if (queued >= MAX_WAITING_TURN && !socket._paused) {
    socket._paused = true;
    socket.pause();
  }
  // Node's own 'drain' listener (socketOnDrain) clears `_paused` and resumes the parser whenever
  // the response going out drains, knowing nothing of requests that wrote no bytes yet. This
  // listener, added after Node's, pauses again while too many wait.
  if (queued >= MAX_WAITING_TURN && !repausing.has(socket)) {
    repausing.add(socket);
    socket.on('drain', () => {
      if ((waitingTurn.get(socket) ?? 0) < MAX_WAITING_TURN || socket._paused || socket.destroyed) return;
      socket._paused = true;
      socket.parser?.pause();
      socket.pause();
    });
  }
  res.once('socket', () => {
    const left = (waitingTurn.get(socket) ?? 1) - 1;
    waitingTurn.set(socket, left);
    if (left < MAX_WAITING_TURN && socket._paused && !socket.destroyed) {
      socket._paused = false;
      socket.parser?.resume();
      socket.resume();
    }
    go();
  });
}
