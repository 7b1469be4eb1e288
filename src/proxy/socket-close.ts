import type { Socket } from 'node:net';

const waiting = new WeakMap<Socket, Set<() => void>>();

/**
 * Runs `fn` when `socket` closes; returns the way to cancel it. A pipelined response still
 * queued behind another never emits 'close' if the client goes away first (it never got the
 * socket), so the socket's own 'close' must stand in for it. One listener per socket, however
 * deep the pipeline, so Node's listener-leak warning never fires.
 */
export function onSocketClose(socket: Socket, fn: () => void): () => void {
  let set = waiting.get(socket);
  if (set === undefined) {
    const callbacks = new Set<() => void>();
    set = callbacks;
    waiting.set(socket, callbacks);
    socket.once('close', () => {
      waiting.delete(socket);
      for (const callback of callbacks) callback();
    });
  }
  set.add(fn);
  const callbacks = set;
  return () => callbacks.delete(fn);
}
