import type { Socket } from 'node:net';

let resetting = false;

/**
 * undici treats an ECONNRESET on a connection whose response has no keep-alive as the end of
 * that response (client-h1 onHttpSocketError): for a close-delimited body (no Content-Length,
 * not chunked) the reset of a crashed upstream then completes the response, synchronously,
 * inside the socket's 'error' event. This listener runs first and raises a flag until the next
 * microtask checkpoint (the end of that event's handling), so that a completion heard meanwhile
 * can be told from a clean close; no other socket's events run before the flag is down.
 */
export function watchForReset(socket: Socket): void {
  socket.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'ECONNRESET') return;
    resetting = true;
    queueMicrotask(() => {
      resetting = false;
    });
  });
}

/** True while an upstream socket's reset is being handled. */
export function upstreamResetting(): boolean {
  return resetting;
}
