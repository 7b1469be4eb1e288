import { expect, test } from 'vitest';
import { classify } from '../../../src/proxy/errors.js';

const err = (code: string, message = code) => Object.assign(new Error(message), { code });

test.each([
  { code: 'ECONNREFUSED', kind: 'connect', status: 502, upstream: true, beforeSend: true },
  { code: 'EHOSTUNREACH', kind: 'connect', status: 502, upstream: true, beforeSend: true },
  { code: 'ENOTFOUND', kind: 'connect', status: 502, upstream: true, beforeSend: true },
  { code: 'UND_ERR_CONNECT_TIMEOUT', kind: 'timeout', status: 504, upstream: true, beforeSend: true },
  { code: 'UND_ERR_HEADERS_TIMEOUT', kind: 'timeout', status: 504, upstream: true, beforeSend: false },
  { code: 'UND_ERR_BODY_TIMEOUT', kind: 'timeout', status: 504, upstream: true, beforeSend: false },
  { code: 'ECONNRESET', kind: 'reset', status: 502, upstream: true, beforeSend: false },
  { code: 'EPIPE', kind: 'reset', status: 502, upstream: true, beforeSend: false },
  { code: 'UND_ERR_SOCKET', kind: 'reset', status: 502, upstream: true, beforeSend: false },
  { code: 'HPE_INVALID_CONSTANT', kind: 'protocol', status: 502, upstream: true, beforeSend: false },
  { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', kind: 'protocol', status: 502, upstream: true, beforeSend: false },
  { code: 'FICUS_BAD_HEADER', kind: 'protocol', status: 502, upstream: true, beforeSend: false },
  { code: 'UND_ERR_CLOSED', kind: 'unavailable', status: 502, upstream: false, beforeSend: true },
  { code: 'UND_ERR_DESTROYED', kind: 'unavailable', status: 502, upstream: false, beforeSend: true },
  { code: 'UND_ERR_ABORTED', kind: 'client_abort', status: 0, upstream: false, beforeSend: false },
  { code: 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', kind: 'client_error', status: 400, upstream: false, beforeSend: false },
  { code: 'UND_ERR_INVALID_ARG', kind: 'client_error', status: 400, upstream: false, beforeSend: false },
])('$code → $kind ($status)', ({ code, ...want }) => {
  expect(classify(err(code), undefined)).toMatchObject(want);
});

test.each(['ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'ECONNREFUSED'])(
  'whatever undici reports (%s), a client that went away is never the upstream’s fault',
  (code) => {
    expect(classify(err(code), 'client_abort')).toMatchObject({ kind: 'client_abort', status: 0, upstream: false });
  },
);

test('a body over the limit is the client’s fault: 413', () => {
  expect(classify(err('ECONNRESET'), 'too_large')).toMatchObject({ kind: 'too_large', status: 413, upstream: false });
});

test('something that is not even an Error is still classified', () => {
  expect(classify('boom', undefined)).toMatchObject({ kind: 'protocol', status: 502, message: 'boom' });
  expect(classify(undefined, undefined)).toMatchObject({ kind: 'protocol', status: 502 });
});
