/**
 * V-Proto framing (docs/formats/protocol.md section 1). Knows nothing of sockets:
 * {@link FrameDecoder} is fed bytes and returns complete frames.
 *
 * Layout, all integers little-endian:
 *
 *     offset  size  field
 *     0       4     magic "VELO" (56 45 4C 4F)
 *     4       1     opcode
 *     5       1     flags: bits 0-1 consistency, 2-3 compression, 4-7 zero
 *     6       8     body length N (u64)
 *     14      N     body
 *     14+N    4     CRC-32 (IEEE) of bytes [0, 14+N)
 *
 * @module
 */

import * as zlib from "node:zlib";
import { BadCrcError, FrameTooLargeError, ProtocolError } from "./errors.js";
import { type Fields, type TableDef, encodeTableInto } from "./flatbuf.js";

export const HEADER_SIZE = 14;
export const TRAILER_SIZE = 4;
export const DEFAULT_MAX_BODY = 64 * 1024 * 1024;
const MAGIC = 0x4f4c4556; // "VELO" read as u32 little-endian

/** Consistency levels (flags bits 0-1). */
export const Consistency = { LINEARIZABLE: 0, STALE_OK: 1 } as const;

let table: Uint32Array | undefined;
function crc32Soft(data: Uint8Array, crc = 0): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = (table[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

type Crc = (data: Uint8Array, value?: number) => number;
const nativeCrc = (zlib as unknown as { crc32?: Crc }).crc32;

/** CRC-32 (IEEE 802.3, as zlib.crc32); `zlib.crc32` where Node has it (20.15+). */
export const crc32: Crc = nativeCrc ?? crc32Soft;

/** One decoded frame. `body` is a view into the receive buffer: copy it to keep it. */
export interface Frame {
  opcode: number;
  flags: number;
  body: Buffer;
}

/** Serialise one frame. */
export function encodeFrame(opcode: number, flags: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + body.length + TRAILER_SIZE);
  out.set(body, HEADER_SIZE);
  return sealFrame(opcode, flags, out);
}

/** One frame whose body is the table `def` holding `values` (one copy of the body, not two). */
export function encodeTableFrame(opcode: number, flags: number, def: TableDef, values: Fields): Buffer {
  return sealFrame(opcode, flags, encodeTableInto(def, values, HEADER_SIZE, TRAILER_SIZE));
}

/** Fill in the header and CRC of a frame buffer whose body is already in place. */
function sealFrame(opcode: number, flags: number, out: Buffer): Buffer {
  const n = out.length - HEADER_SIZE - TRAILER_SIZE;
  out.writeUInt32LE(MAGIC, 0);
  out[4] = opcode;
  out[5] = flags;
  out.writeUInt32LE(n >>> 0, 6);
  out.writeUInt32LE(Math.floor(n / 0x100000000), 10);
  out.writeUInt32LE(crc32(out.subarray(0, HEADER_SIZE + n)), HEADER_SIZE + n);
  return out;
}

/**
 * Incremental frame parser. `feed()` returns every complete frame; it throws
 * ProtocolError (bad magic, reserved flags), BadCrcError or FrameTooLargeError
 * when the stream can no longer be trusted (the caller must close).
 * Memory is bounded by one frame of `maxBody` plus what one read delivers.
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  constructor(readonly maxBody: number = DEFAULT_MAX_BODY) {}

  /** Bytes held that do not yet form a complete frame. */
  get pending(): number {
    return this.buf.length;
  }

  feed(chunk: Buffer): Frame[] {
    const buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: Frame[] = [];
    let pos = 0;
    const end = buf.length;
    while (end - pos >= HEADER_SIZE) {
      if (buf.readUInt32LE(pos) !== MAGIC) throw new ProtocolError(`bad magic at stream offset ${pos}`);
      const flags = buf[pos + 5] as number;
      if (flags & 0xf0 || (flags & 0x03) > 1) throw new ProtocolError(`reserved flag bits set: 0x${flags.toString(16)}`);
      if ((flags & 0x0c) !== 0) throw new ProtocolError("compressed reply, but compression was not negotiated");
      const hi = buf.readUInt32LE(pos + 10);
      const length = buf.readUInt32LE(pos + 6) + hi * 0x100000000;
      if (hi !== 0 || length > this.maxBody) {
        throw new FrameTooLargeError(`body of ${length} bytes exceeds the limit of ${this.maxBody}`);
      }
      const total = HEADER_SIZE + length + TRAILER_SIZE;
      if (end - pos < total) break;
      const bodyEnd = pos + HEADER_SIZE + length;
      if (crc32(buf.subarray(pos, bodyEnd)) !== buf.readUInt32LE(bodyEnd)) {
        throw new BadCrcError(`CRC mismatch in frame with opcode 0x${(buf[pos + 4] as number).toString(16)}`);
      }
      frames.push({ opcode: buf[pos + 4] as number, flags, body: buf.subarray(pos + HEADER_SIZE, bodyEnd) });
      pos += total;
    }
    this.buf = pos === end ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
    return frames;
  }
}
