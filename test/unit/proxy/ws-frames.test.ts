import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { FrameCursor, goingAwayFrame, OPCODE_CLOSE } from '../../../src/proxy/ws-frames.js';
import { encodeFrame, FrameParser, OP } from '../../helpers/websocket.js';

/**
 * The cursor must find every frame boundary (RFC 6455 §5.2) however TCP cuts the stream: a
 * Close frame of ficus's own injected anywhere else would corrupt the tunnel.
 */

interface Spec {
  opcode: number;
  length: number;
  masked: boolean;
}

/** Every length form (7-bit, 16-bit, 64-bit) at its edges, masked and not, control frames included. */
const SPECS: Spec[] = [
  { opcode: OP.text, length: 0, masked: false },
  { opcode: OP.binary, length: 1, masked: true },
  { opcode: OP.text, length: 125, masked: true },
  { opcode: OP.ping, length: 0, masked: true },
  { opcode: OP.binary, length: 126, masked: false },
  { opcode: OP.text, length: 65_535, masked: true },
  { opcode: OP.binary, length: 65_536, masked: false },
  { opcode: OP.close, length: 2, masked: true },
  { opcode: OP.binary, length: 70_000, masked: true },
  { opcode: OP.pong, length: 3, masked: false },
];

function stream(specs: Spec[]): { bytes: Buffer; boundaries: number[] } {
  const frames = specs.map((s) => encodeFrame(s.opcode, Buffer.alloc(s.length, 0x7e), s.masked));
  const boundaries = [0];
  for (const frame of frames) boundaries.push((boundaries.at(-1) as number) + frame.length);
  return { bytes: Buffer.concat(frames), boundaries };
}

describe('FrameCursor', () => {
  test('fed one byte at a time, it is between frames exactly at every frame boundary', () => {
    const { bytes, boundaries } = stream(SPECS);
    const seen: [number, number][] = [];
    const cursor = new FrameCursor((opcode, length) => seen.push([opcode, length]));
    const found: number[] = [];
    if (cursor.atBoundary) found.push(0);
    let consumed = 0;
    for (let i = 0; i < bytes.length; i++) {
      consumed += cursor.advance(bytes.subarray(i, i + 1));
      if (cursor.atBoundary) found.push(i + 1);
    }
    expect(consumed).toBe(bytes.length);
    expect(found).toEqual(boundaries);
    expect(seen).toEqual(SPECS.map((s) => [s.opcode, s.length]));
  });

  test('cut in two at every byte, stopping at a boundary stops at the first one at or after the cut', () => {
    const { bytes, boundaries } = stream(SPECS.filter((s) => s.length < 1_000));
    for (let cut = 0; cut <= bytes.length; cut++) {
      const cursor = new FrameCursor();
      expect(cursor.advance(bytes.subarray(0, cut))).toBe(cut);
      const rest = bytes.subarray(cut);
      const next = boundaries.find((b) => b >= cut) as number;
      expect(cursor.advance(rest, 0, true), `cut at ${cut}`).toBe(next - cut);
      expect(cursor.atBoundary).toBe(true);
      // Resuming from there reads the remainder to the end, between frames again.
      cursor.advance(rest, next - cut);
      expect(cursor.atBoundary).toBe(true);
    }
  });

  test('any frames, cut anywhere: the boundaries found are the frames\' own', () => {
    const spec = fc.record({ opcode: fc.constantFrom(0, 1, 2, 8, 9, 10), length: fc.oneof(fc.integer({ min: 0, max: 130 }), fc.integer({ min: 65_530, max: 65_540 })), masked: fc.boolean() });
    fc.assert(
      fc.property(fc.array(spec, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 20 }), (specs, cuts) => {
        const { bytes, boundaries } = stream(specs);
        const cursor = new FrameCursor();
        const found: number[] = [0];
        let at = 0;
        let c = 0;
        while (at < bytes.length) {
          const chunk = bytes.subarray(at, at + (cuts[c++ % cuts.length] as number));
          // Walk the chunk boundary to boundary, as the tunnel does while closing; from a
          // boundary, one byte more starts the next frame.
          let offset = 0;
          while (offset < chunk.length) {
            const stop = cursor.advance(chunk, offset, true);
            offset = stop > offset ? stop : cursor.advance(chunk.subarray(0, offset + 1), offset);
            if (cursor.atBoundary && found.at(-1) !== at + offset) found.push(at + offset);
          }
          at += chunk.length;
        }
        expect(found).toEqual(boundaries);
      }),
      { numRuns: 200 },
    );
  });

  test('a 64-bit length over 2^53 leaves the cursor broken, never between frames again', () => {
    const header = Buffer.from([0x82, 127, 0x00, 0x20, 0, 0, 0, 0, 0, 0]);
    const cursor = new FrameCursor();
    expect(cursor.advance(Buffer.concat([header, Buffer.alloc(100)]))).toBe(110);
    expect(cursor.broken).toBe(true);
    expect(cursor.atBoundary).toBe(false);
    expect(cursor.advance(Buffer.alloc(10), 0, true)).toBe(10);
  });

  test('the largest exact 64-bit length is still followed', () => {
    const header = Buffer.from([0x82, 127, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const lengths: number[] = [];
    const cursor = new FrameCursor((_, length) => lengths.push(length));
    cursor.advance(header);
    expect(cursor.broken).toBe(false);
    expect(lengths).toEqual([Number.MAX_SAFE_INTEGER]);
  });
});

test.each([
  { to: 'a client (unmasked)', key: undefined },
  { to: 'a server (masked)', key: Buffer.from([1, 2, 3, 4]) },
])('the going-away frame to $to is a Close with code 1001', ({ key }) => {
  const bytes = goingAwayFrame(key);
  expect(((bytes[1] as number) & 0x80) !== 0).toBe(key !== undefined);
  const [frame, ...rest] = new FrameParser().push(bytes);
  expect(rest).toEqual([]);
  expect(frame?.opcode).toBe(OPCODE_CLOSE);
  expect(frame?.fin).toBe(true);
  expect(frame?.payload.readUInt16BE(0)).toBe(1001);
  expect(frame?.payload.subarray(2).toString()).toBe('going away');
});
