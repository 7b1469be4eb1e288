/**
 * Where WebSocket frames begin and end in one direction of a tunnel (RFC 6455 §5.2), without
 * buffering or unmasking anything: a Close frame of our own may only go in between two frames,
 * never into the middle of one.
 */

export const OPCODE_CLOSE = 0x8;

/** Called when a frame's header is complete, before its payload. */
export type FrameListener = (opcode: number, payloadLength: number) => void;

/** 2 fixed bytes, up to 8 of extended length, up to 4 of mask key. */
const MAX_HEADER = 14;

export class FrameCursor {
  readonly #header = Buffer.alloc(MAX_HEADER);
  /** Header bytes read so far of the frame being read; 0 between frames and in a payload. */
  #have = 0;
  /** Header bytes the frame being read has in all, known once its second byte is in. */
  #need = 2;
  /** Payload bytes still to come of the current frame. */
  #remaining = 0;
  #broken = false;

  constructor(private readonly onFrame?: FrameListener) {}

  /** The next byte starts a new frame. */
  get atBoundary(): boolean {
    return !this.#broken && this.#have === 0 && this.#remaining === 0;
  }

  /**
   * A length no JavaScript number holds exactly (RFC 6455 wants the 64-bit length's top bit
   * clear; lengths over 2^53 are no real message): boundaries can no longer be told.
   */
  get broken(): boolean {
    return this.#broken;
  }

  /**
   * Reads `chunk` from `start` and returns where it stopped: the chunk's end, or with
   * `stopAtBoundary` the first frame boundary at or after `start` (`start` itself when already
   * between frames).
   */
  advance(chunk: Buffer, start = 0, stopAtBoundary = false): number {
    let at = start;
    while (at < chunk.length) {
      if (this.#broken) return chunk.length;
      if (stopAtBoundary && this.atBoundary) return at;
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - at);
        this.#remaining -= take;
        at += take;
        continue;
      }
      this.#header[this.#have++] = chunk[at++] as number;
      if (this.#have === 2) this.#need = headerLength(this.#header);
      if (this.#have === this.#need) this.#headerDone();
    }
    return at;
  }

  #headerDone(): void {
    const header = this.#header;
    const short = (header[1] as number) & 0x7f;
    let length = short;
    if (short === 126) length = header.readUInt16BE(2);
    else if (short === 127) {
      const high = header.readUInt32BE(2);
      if (high >= 0x200000) {
        this.#broken = true;
        return;
      }
      length = high * 0x1_0000_0000 + header.readUInt32BE(6);
    }
    this.#have = 0;
    this.#need = 2;
    this.#remaining = length;
    this.onFrame?.((header[0] as number) & 0x0f, length);
  }
}

function headerLength(header: Buffer): number {
  const second = header[1] as number;
  const short = second & 0x7f;
  const extended = short === 126 ? 2 : short === 127 ? 8 : 0;
  return 2 + extended + (second & 0x80 ? 4 : 0);
}

const GOING_AWAY = 1001;
const GOING_AWAY_REASON = Buffer.from('going away');

/**
 * A Close frame with code 1001 (RFC 6455 §7.4.1: the server is going down, or the tunnel's
 * route moved). Frames to a server are masked (§5.3) with `maskKey`; frames to a client never are.
 */
export function goingAwayFrame(maskKey?: Buffer): Buffer {
  const payload = Buffer.alloc(2 + GOING_AWAY_REASON.length);
  payload.writeUInt16BE(GOING_AWAY, 0);
  GOING_AWAY_REASON.copy(payload, 2);
  if (maskKey === undefined) return Buffer.concat([Buffer.from([0x80 | OPCODE_CLOSE, payload.length]), payload]);
  for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (maskKey[i % 4] as number);
  return Buffer.concat([Buffer.from([0x80 | OPCODE_CLOSE, 0x80 | payload.length]), maskKey, payload]);
}
