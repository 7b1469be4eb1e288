import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';

export interface RawRequest {
  method: string;
  path: string;
  /** The whole request head as received, latin1. */
  head: string;
}

export interface RawUpstream {
  url: string;
  /** Every request head the upstream parsed, in order, over all its connections. */
  seen: RawRequest[];
  /** How many connections were ever opened to it. */
  connections(): number;
}

/**
 * A TCP upstream that speaks no HTTP of its own: each request head is handed to `answer`, which
 * writes whatever bytes it likes on the socket (and may end or destroy it). Request bodies with
 * a Content-Length are skipped, so a kept-alive connection can carry the next request. Cleanup
 * is registered at once.
 */
export async function startRawUpstream(answer: (request: RawRequest, socket: Socket) => void): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const seen: RawRequest[] = [];
  let opened = 0;
  const server = createServer((socket) => {
    opened++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    let skip = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (skip > 0) {
          const n = Math.min(skip, buffered.length);
          skip -= n;
          buffered = buffered.subarray(n);
          if (skip > 0) return;
        }
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buffered.subarray(0, end + 4).toString('latin1');
        buffered = buffered.subarray(end + 4);
        skip = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        const [method = '', path = ''] = head.split(' ', 2);
        const request = { method, path, head };
        seen.push(request);
        answer(request, socket);
        if (socket.destroyed) return;
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, seen, connections: () => opened };
}

/** A complete, well-formed response whose body is `body`. */
export function okResponse(body: string): string {
  return `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`;
}
