/** The shared frame vectors (proto/vectors/frames.json): byte-identical encoding, exact decoding. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeTable, encodeTable, type TableDef } from "../src/flatbuf.js";
import { FrameDecoder, encodeFrame, encodeTableFrame, crc32 } from "../src/frame.js";
import { TABLES } from "../src/messages.js";
import { errorFromWire, ErrorCode, VelocityError } from "../src/errors.js";
import { frameVectors, hex } from "./helpers.js";

const vectors = frameVectors();

/** Vector fields (hex bytes, decimal-string 64-bit ints) as the codec's values. */
function toCodec(def: TableDef, fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of def.fields) {
    const v = fields[f.name];
    if (v === undefined) continue;
    if (f.type === "bytes") out[f.name] = hex(v as string);
    else if (f.type === "u64" || f.type === "i64") out[f.name] = BigInt(v as string | number);
    else if (typeof f.type === "object") {
      const sub = f.type;
      out[f.name] = (v as Record<string, unknown>[]).map((c) => toCodec(sub, c));
    } else out[f.name] = v;
  }
  return out;
}

function normalise(def: TableDef, fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of def.fields) {
    const v = fields[f.name];
    if (f.type === "bytes") out[f.name] = Buffer.from(v as Uint8Array).toString("hex");
    else if (typeof f.type === "object") {
      const sub = f.type;
      out[f.name] = (v as Record<string, unknown>[]).map((c) => normalise(sub, c));
    } else out[f.name] = v;
  }
  return out;
}

test("crc32 check value", () => {
  assert.equal(crc32(Buffer.from("123456789")), 0xcbf43926);
});

const known = vectors.valid.filter((v) => TABLES[v.message] !== undefined);
test("the SDK knows the client-side tables of the vectors", () => {
  assert.ok(known.length >= 35, `only ${known.length} vectors with known tables`);
});

for (const v of known) {
  const def = TABLES[v.message] as TableDef;
  test(`vector ${v.name}: encode is byte-identical`, () => {
    const body = encodeTable(def, toCodec(def, v.fields));
    assert.equal(Buffer.from(body).toString("hex"), v.body_hex);
    assert.equal(encodeFrame(v.opcode, v.flags, body).toString("hex"), v.frame_hex);
    assert.equal(encodeTableFrame(v.opcode, v.flags, def, toCodec(def, v.fields)).toString("hex"), v.frame_hex);
  });
  test(`vector ${v.name}: decode gives the fields`, () => {
    const frames = new FrameDecoder().feed(hex(v.frame_hex));
    assert.equal(frames.length, 1);
    const f = frames[0]!;
    assert.equal(f.opcode, v.opcode);
    assert.equal(f.flags, v.flags);
    const got = normalise(def, decodeTable(def, f.body));
    const want = normalise(def, decodeTable(def, hex(v.body_hex)));
    assert.deepEqual(got, want);
    // And against the JSON fields themselves.
    const expect = normalise(def, toCodec(def, v.fields));
    for (const fd of def.fields) {
      if (!(fd.name in v.fields)) continue;
      const a = got[fd.name];
      const b = expect[fd.name];
      if (typeof a === "bigint" || typeof b === "bigint") assert.equal(BigInt(a as bigint), BigInt(b as bigint), fd.name);
      else assert.deepEqual(a, b, fd.name);
    }
  });
}

test("all frames fed byte by byte decode the same", () => {
  const all = Buffer.concat(vectors.valid.map((v) => hex(v.frame_hex)));
  const d = new FrameDecoder();
  const frames = [];
  for (let i = 0; i < all.length; i++) frames.push(...d.feed(all.subarray(i, i + 1)));
  assert.equal(frames.length, vectors.valid.length);
  frames.forEach((f, i) => assert.equal(Buffer.from(f.body).toString("hex"), vectors.valid[i]!.body_hex));
  assert.equal(d.pending, 0);
});

for (const v of vectors.invalid) {
  test(`invalid vector ${v.name} is rejected with ${v.error}`, () => {
    const frame = hex(v.frame_hex);
    const code = ErrorCode[v.error as keyof typeof ErrorCode];
    let err: unknown;
    try {
      // Framing errors surface from the decoder; body errors from decoding a KeyRequest;
      // an unknown opcode is something only a server answers: check the mapping.
      const frames = new FrameDecoder(1 << 24).feed(frame);
      if (v.error === "UNKNOWN_OPCODE") {
        assert.equal(frames[0]!.opcode, 0x7e);
        err = errorFromWire(code, "unknown opcode");
      } else {
        for (const f of frames) decodeTable(TABLES["KeyRequest"]!, f.body);
      }
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof VelocityError, `${v.name}: expected a VelocityError, got ${String(err)}`);
    assert.equal(err.code, code, `${v.name}: ${err.message}`);
  });
}

test("the shared builder starts clean after a failed encode", () => {
  const v = vectors.valid.find((x) => x.name === "mget-request")!;
  const def = TABLES[v.message]!;
  assert.throws(() => encodeTable(TABLES["SetRequest"]!, { key: Buffer.from("k"), ttl_ms: 2n ** 64n }));
  assert.equal(Buffer.from(encodeTable(def, toCodec(def, v.fields))).toString("hex"), v.body_hex);
});
