import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Timeouts } from '../config/snapshot.js';
import type { Endpoint } from '../upstream/endpoint.js';
import { CLIENT_ABORT, classify, type Fault } from './errors.js';

/** What a client may send behind its upgrade before the answer; past it, it is no longer read until then. */
const EARLY_BYTES = 64 * 1024;

const CONNECT_TIMEOUT: Fault = Object.freeze({ kind: 'timeout', status: 504, upstream: true, beforeSend: true, message: 'connect timeout' });
const RESPONSE_TIMEOUT: Fault = Object.freeze({ kind: 'timeout', status: 504, upstream: true, beforeSend: false, message: 'no answer to the upgrade within timeouts.response' });
// RFC 9110 §15.2.2: a 101 names the protocols switched to. Node reads one without Upgrade as a
// plain response; relayed, it would tell the client a switch happened that did not.
const NO_UPGRADE: Fault = Object.freeze({ kind: 'protocol', status: 502, upstream: true, beforeSend: false, message: '101 without Upgrade' });
const DRAINING: Fault = Object.freeze({ kind: 'unavailable', status: 503, upstream: false, beforeSend: false, message: 'draining' });

/** How a handshake ended; exactly one is called. */
export interface HandshakeOutcome {
  /** 101: the upstream's socket, what it sent after its head, and what the client sent after its own. */
  upgraded(res: IncomingMessage, socket: Duplex, upstreamHead: Buffer, early: Buffer): void;
  /** Any other answer, to relay. */
  refused(res: IncomingMessage): void;
  /** With what the client sent behind its head meanwhile, for a second try. */
  failed(fault: Fault, early: Buffer): void;
}

/**
 * Sends a WebSocket handshake to one endpoint on a connection of its own (a tunnel is never
 * pooled), within the service's connect and response timeouts, and reports once. The client
 * is read meanwhile: its hanging up would otherwise go unseen until a timeout blamed the
 * upstream; what it sends (early frames) is kept for the tunnel. Returns the way to abort
 * (drain), reported as `failed`.
 */
export function askUpstream(endpoint: Endpoint, path: string, headers: string[], timeouts: Timeouts, client: Duplex, head: Buffer, outcome: HandshakeOutcome): () => void {
  const origin = new URL(endpoint.origin);
  const send = origin.protocol === 'https:' ? httpsRequest : httpRequest;
  const upstream: ClientRequest = send({
    host: origin.hostname.replace(/^\[|\]$/g, ''),
    port: origin.port || (origin.protocol === 'https:' ? 443 : 80),
    method: 'GET',
    path,
    headers,
    setHost: false,
    agent: false,
  });

  let settled = false;
  let timer = setTimeout(() => fail(CONNECT_TIMEOUT), timeouts.connectMs);
  const early = [head];
  let earlyBytes = head.length;
  const keep = (chunk: Buffer): void => {
    early.push(chunk);
    earlyBytes += chunk.length;
    if (earlyBytes > EARLY_BYTES) client.pause();
  };
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    client.off('close', clientGone);
    client.off('end', clientGone);
    client.off('data', keep);
    client.pause();
    return true;
  };
  const fail = (fault: Fault): void => {
    if (!settle()) return;
    upstream.destroy();
    outcome.failed(fault, Buffer.concat(early));
  };
  const clientGone = (): void => fail(CLIENT_ABORT);
  client.on('close', clientGone);
  client.on('end', clientGone);
  client.on('data', keep);
  // A second try follows one that paused the client: it must be read again to see it leave.
  if (earlyBytes <= EARLY_BYTES) client.resume();
  let connected = false;
  // Before the connection is made (TCP, and for https the TLS handshake with its certificate
  // check), nothing was sent: a connect error, tried again on another endpoint.
  upstream.on('error', (error) => fail(connected ? classify(error, undefined) : connectFault(error)));
  upstream.on('socket', (socket) => {
    // To an https endpoint the connection is made once TLS is: a server that takes the TCP
    // connection and never finishes the handshake is a connect timeout, as in undici's pools.
    socket.once(origin.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(timer);
      timer = setTimeout(() => fail(RESPONSE_TIMEOUT), timeouts.responseMs);
    });
  });
  upstream.on('response', (res) => {
    if (res.statusCode === 101) {
      res.destroy();
      return fail(NO_UPGRADE);
    }
    if (!settle()) return void res.destroy();
    outcome.refused(res);
  });
  upstream.on('upgrade', (res, socket, upstreamHead) => {
    if (!settle()) return void socket.destroy();
    outcome.upgraded(res, socket, upstreamHead, Buffer.concat(early));
  });
  upstream.end();
  return () => fail(DRAINING);
}

function connectFault(error: unknown): Fault {
  const fault = classify(error, undefined);
  if (fault.kind === 'client_abort' || fault.kind === 'timeout') return fault;
  return { kind: 'connect', status: 502, upstream: true, beforeSend: true, message: fault.message };
}
