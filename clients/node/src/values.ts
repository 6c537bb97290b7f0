/**
 * Typed values: how JavaScript values map to (kind, bytes) on the wire, exactly
 * as the Python SDK (proto/python/vproto/values.py) does it, so a value
 * written by one SDK reads back the same in the others:
 *
 *     Buffer / Uint8Array                  -> Bytes  (kind 0)
 *     string                               -> String (kind 1, UTF-8)
 *     bigint, or a whole number in int64   -> Int    (kind 2, 8 bytes LE signed)
 *     boolean, null, other numbers, objects, arrays -> Json (kind 3, compact)
 *
 * Reading: Int comes back as a `number` when it is a safe integer, as a
 * `bigint` otherwise; unknown kinds come back as raw bytes (a Buffer).
 *
 * JSON text is compact and ASCII-only (non-ASCII escaped as \uXXXX), as Python's
 * `json.dumps(separators=(",", ":"))` writes it. JavaScript has one number type,
 * so a whole number is always an Int: Python's float `2.0` (stored as JSON
 * `2.0`) reads back as the number 2 here, and writing 2 back stores an Int.
 *
 * @module
 */

import { ProtocolError } from "./errors.js";

/** Value kinds (ValueKind in proto/velocity.fbs). */
export const ValueKind = { BYTES: 0, STRING: 1, INT: 2, JSON: 3 } as const;

/** A JSON-representable value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** Anything the SDK can store. */
export type Value = Uint8Array | string | number | bigint | boolean | null | Json[] | { [key: string]: Json };

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const utf8 = new TextDecoder("utf-8", { fatal: true });
const NON_ASCII = /[\u0080-\uffff]/g;
const escapeUnit = (c: string): string => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");

/** Encode a 64-bit signed integer as 8 bytes little-endian. */
export function encodeInt(n: bigint | number): Buffer {
  const v = BigInt(n);
  if (v < INT64_MIN || v > INT64_MAX) {
    throw new RangeError(`integer ${v} does not fit in 64 bits; store it as a string`);
  }
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64LE(v);
  return b;
}

/** A bigint as a number when it is exactly representable, else the bigint. */
export function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** The (kind, bytes) pair the Python SDK would write for the same value. */
export function encodeValue(value: Value): [kind: number, data: Buffer] {
  if (value instanceof Uint8Array) return [ValueKind.BYTES, Buffer.from(value.buffer, value.byteOffset, value.byteLength)];
  if (typeof value === "string") return [ValueKind.STRING, Buffer.from(value, "utf8")];
  if (typeof value === "bigint") return [ValueKind.INT, encodeInt(value)];
  if (typeof value === "number" && Number.isInteger(value) && !Object.is(value, -0) && Math.abs(value) < 2 ** 63) {
    return [ValueKind.INT, encodeInt(value)];
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new TypeError(`cannot store ${value}: JSON has no NaN or Infinity`);
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === "bigint") throw new TypeError("a bigint inside a JSON value");
      if (typeof v === "number" && !Number.isFinite(v)) throw new TypeError("NaN or Infinity inside a JSON value");
      return v;
    });
  } catch (e) {
    throw new TypeError(`cannot store this value as JSON: ${(e as Error).message}`);
  }
  if (text === undefined) throw new TypeError(`cannot store a ${typeof value}`);
  // Python's json.dumps escapes every non-ASCII UTF-16 unit (ensure_ascii): do the same, byte for byte.
  return [ValueKind.JSON, Buffer.from(text.replace(NON_ASCII, escapeUnit), "latin1")];
}

/** Decode a stored value to the type it was written as. Throws ProtocolError on malformed data. */
export function decodeValue(kind: number, data: Uint8Array): Value {
  switch (kind) {
    case ValueKind.BYTES:
      return Buffer.from(data);
    case ValueKind.STRING:
      try {
        return utf8.decode(data);
      } catch {
        throw new ProtocolError("a String value is not valid UTF-8");
      }
    case ValueKind.INT: {
      if (data.length !== 8) throw new ProtocolError(`an Int value must be 8 bytes, got ${data.length}`);
      return narrow(Buffer.from(data.buffer, data.byteOffset, 8).readBigInt64LE());
    }
    case ValueKind.JSON:
      try {
        return JSON.parse(utf8.decode(data)) as Value;
      } catch {
        throw new ProtocolError("a Json value is not valid JSON");
      }
    default:
      return Buffer.from(data); // unknown future kinds come back as raw bytes
  }
}
