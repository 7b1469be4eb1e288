import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import { listenForTest } from './upstream.js';

/**
 * A tiny WebSocket client and echo server written against RFC 6455 by hand, so that the tests
 * depend on no WebSocket library and can see (and send) every byte and header.
 */

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP = { text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

export function acceptKey(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** One frame; masked with a random key when `mask` (a client's frames always are). */
export function encodeFrame(opcode: number, payload: Buffer | string, mask: boolean, fin = true): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const length = data.length;
  const extended = length < 126 ? 0 : length < 0x10000 ? 2 : 8;
  const head = Buffer.alloc(2 + extended + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | opcode;
  head[1] = (mask ? 0x80 : 0) | (extended === 0 ? length : extended === 2 ? 126 : 127);
  if (extended === 2) head.writeUInt16BE(length, 2);
  if (extended === 8) head.writeBigUInt64BE(BigInt(length), 2);
  if (!mask) return Buffer.concat([head, data]);
  const key = randomBytes(4);
  key.copy(head, 2 + extended);
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i++) masked[i] = (data[i] as number) ^ (key[i % 4] as number);
  return Buffer.concat([head, masked]);
}

export function closePayload(code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return payload;
}

/** Whole frames out of a byte stream, payloads unmasked. */
export class FrameParser {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: Frame[] = [];
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) break;
      const masked = ((b[1] as number) & 0x80) !== 0;
      let length = (b[1] as number) & 0x7f;
      let at = 2;
      if (length === 126) {
        if (b.length < 4) break;
        length = b.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (b.length < 10) break;
        length = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      const keyAt = at;
      if (masked) at += 4;
      if (b.length < at + length) break;
      const payload = Buffer.from(b.subarray(at, at + length));
      if (masked) for (let i = 0; i < length; i++) payload[i] = (payload[i] as number) ^ (b[keyAt + (i % 4)] as number);
      frames.push({ fin: ((b[0] as number) & 0x80) !== 0, opcode: (b[0] as number) & 0x0f, payload });
      this.#buffer = b.subarray(at + length);
    }
    return frames;
  }
}

/** Frames as they arrive, to be awaited one at a time. */
class FrameQueue {
  readonly #frames: Frame[] = [];
  readonly #events = new EventEmitter();
  ended = false;

  add(frame: Frame): void {
    this.#frames.push(frame);
    this.#events.emit('frame');
  }

  end(): void {
    this.ended = true;
    this.#events.emit('frame');
  }

  /** The next frame; rejects when the connection ends first or `timeoutMs` passes. */
  async next(timeoutMs = 2_000): Promise<Frame> {
    const deadline = AbortSignal.timeout(timeoutMs);
    for (;;) {
      const frame = this.#frames.shift();
      if (frame !== undefined) return frame;
      if (this.ended) throw new Error('connection closed before the next frame');
      await once(this.#events, 'frame', { signal: deadline });
    }
  }
}

export interface WsClient {
  status: number;
  /** The response head's fields as sent, names as written. */
  rawHeaders: [string, string][];
  header(name: string): string | undefined;
  /** The body of a response that was not a 101, once the proxy closed the connection. */
  body: string;
  socket: Socket;
  send(data: string | Buffer, opcode?: number): void;
  next(timeoutMs?: number): Promise<Frame>;
  /** Resolves when the TCP connection is closed. */
  closed: Promise<void>;
}

/**
 * Opens a connection to 127.0.0.1:`port`, asks for a WebSocket upgrade of `path` and resolves
 * once the answer's head is in (for a 101), or once the connection closed (for anything else,
 * so that `body` is whole). `early` goes in the same write as the head, before any answer.
 * Destroyed when the test finishes.
 */
export async function wsConnect(port: number, path: string, headers: Record<string, string> = {}, early?: Buffer): Promise<WsClient> {
  const socket = connect({ port, host: '127.0.0.1' });
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  // Not `once(socket, 'close')`: that rejects on the 'error' a reset raises (a cut answer is one).
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const fields: Record<string, string> = {
    host: `127.0.0.1:${port}`,
    connection: 'Upgrade',
    upgrade: 'websocket',
    'sec-websocket-version': '13',
    'sec-websocket-key': randomBytes(16).toString('base64'),
    ...headers,
  };
  const head = `GET ${path} HTTP/1.1\r\n${Object.entries(fields).map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  socket.write(early === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), early]));

  const queue = new FrameQueue();
  const parser = new FrameParser();
  let buffered: Buffer = Buffer.alloc(0);
  let client: WsClient | undefined;
  const headDone = new Promise<WsClient>((resolve, reject) => {
    socket.on('close', () => {
      queue.end();
      if (client !== undefined && client.status !== 101) client.body = buffered.toString('latin1');
      if (client !== undefined) resolve(client);
      else reject(new Error(`connection closed before a response head: ${JSON.stringify(buffered.toString('latin1'))}`));
    });
    socket.on('data', (chunk: Buffer) => {
      if (client?.status === 101) {
        for (const frame of parser.push(chunk)) queue.add(frame);
        return;
      }
      buffered = Buffer.concat([buffered, chunk]);
      if (client !== undefined) return;
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number((lines[0] as string).split(' ')[1]);
      const rawHeaders = lines.slice(1).map((line) => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon), line.slice(colon + 1).trim()] as [string, string];
      });
      const rest = buffered.subarray(end + 4);
      buffered = Buffer.from(rest);
      client = {
        status,
        rawHeaders,
        header: (name) => rawHeaders.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1],
        body: '',
        socket,
        send: (data, opcode = typeof data === 'string' ? OP.text : OP.binary) => void socket.write(encodeFrame(opcode, data, true)),
        next: (timeoutMs) => queue.next(timeoutMs),
        closed,
      };
      if (status === 101) {
        for (const frame of parser.push(rest)) queue.add(frame);
        resolve(client);
      }
    });
  });
  return headDone;
}

export interface WsConnection {
  req: IncomingMessage;
  socket: Socket;
  /** Every frame received, in order (Close frames included). */
  frames: Frame[];
  /** Resolves when the TCP connection is closed. */
  closed: Promise<void>;
  send(data: string | Buffer, opcode?: number): void;
}

export interface WsUpstreamOptions {
  /** Answer the upgrade with this status and a body instead of a 101. */
  refuseWith?: number;
  /** Extra fields of the 101 head, as written on the wire. */
  extraHeaders?: string[];
  /** Echo data messages back (default true). */
  echo?: boolean;
}

export interface WsUpstream {
  server: Server;
  url: string;
  port: number;
  /** Upgrade requests, in order. */
  connections: WsConnection[];
  /** Resolves with the next connection to arrive. */
  nextConnection(): Promise<WsConnection>;
  /** Plain HTTP requests seen (answered 200 with the upstream's name). */
  plain: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  close(): Promise<void>;
}

/**
 * A WebSocket echo server (node:http upgrade, 101 written by hand) named `name`: the 101 carries
 * `x-upstream: name`, data frames are echoed unmasked, a Close frame is answered with the same
 * code and the connection ended. Plain requests get 200 and `x-upstream` too.
 */
export async function startWsUpstream(name: string, options: WsUpstreamOptions = {}): Promise<WsUpstream> {
  const connections: WsConnection[] = [];
  const plain: WsUpstream['plain'] = [];
  const arrivals = new EventEmitter();
  const server = createServer((req, res) => {
    plain.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'x-upstream': name, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) });
      res.end(name);
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    // A peer that hung up gets the same: no half-open connection lingers.
    socket.on('end', () => socket.end());
    const connection: WsConnection = {
      req,
      socket,
      frames: [],
      closed: once(socket, 'close').then(() => undefined),
      send: (data, opcode = typeof data === 'string' ? OP.text : OP.binary) => void socket.write(encodeFrame(opcode, data, false)),
    };
    connections.push(connection);
    arrivals.emit('connection', connection);
    if (options.refuseWith !== undefined) {
      const body = `refused by ${name}`;
      socket.end(`HTTP/1.1 ${options.refuseWith} Refused\r\nx-upstream: ${name}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const extra = (options.extraHeaders ?? []).map((line) => `${line}\r\n`).join('');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\nx-upstream: ${name}\r\n${extra}\r\n`);
    const parser = new FrameParser();
    const onData = (chunk: Buffer) => {
      for (const frame of parser.push(chunk)) {
        connection.frames.push(frame);
        if (frame.opcode === OP.close) {
          socket.end(encodeFrame(OP.close, frame.payload.subarray(0, 2), false));
          return;
        }
        if (frame.opcode === OP.ping) connection.send(frame.payload, OP.pong);
        else if (options.echo !== false && (frame.opcode === OP.text || frame.opcode === OP.binary)) connection.send(frame.payload, frame.opcode);
      }
    };
    if (head.length > 0) onData(head);
    socket.on('data', onData);
  });
  const { port, close } = await listenForTest(server);
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    port,
    connections,
    plain,
    nextConnection: async () => (await once(arrivals, 'connection'))[0] as WsConnection,
    close,
  };
}

/** The port of a running proxy's edge listener. */
export function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** An upgrade request a `heldWsUpstream` has not answered yet. */
export interface HeldUpgrade {
  req: IncomingMessage;
  socket: Socket;
}

/**
 * A WebSocket upstream (plain requests answered as `startWsUpstream` does) that takes upgrade
 * requests and answers none until the test does, with `answer101`: for what happens while an
 * upstream weighs an upgrade.
 */
export async function heldWsUpstream(name: string): Promise<{ upstream: WsUpstream; held: HeldUpgrade[]; next(): Promise<HeldUpgrade> }> {
  const upstream = await startWsUpstream(name);
  const held: HeldUpgrade[] = [];
  const arrivals = new EventEmitter();
  upstream.server.removeAllListeners('upgrade');
  upstream.server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => undefined);
    // Read, and hang up when ficus does, as any server would: no half-open connection lingers.
    socket.resume();
    socket.on('end', () => socket.end());
    const one = { req, socket };
    held.push(one);
    arrivals.emit('upgrade', one);
  });
  return { upstream, held, next: async () => (await once(arrivals, 'upgrade'))[0] as HeldUpgrade };
}

export function answer101(held: HeldUpgrade, name = ''): void {
  const key = acceptKey(String(held.req.headers['sec-websocket-key']));
  held.socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${key}\r\n${name ? `x-upstream: ${name}\r\n` : ''}\r\n`);
}
