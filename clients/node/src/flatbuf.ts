/**
 * A small FlatBuffers codec for the V-Proto tables (proto/velocity.fbs).
 *
 * Builder: writes back to front like every FlatBuffers builder, and produces
 * the canonical layout of docs/formats/protocol.md ("Canonical encoding"):
 * byte vectors and strings first, in declaration order, only when non-empty;
 * then the table, fields largest first, ties in reverse declaration order,
 * scalars equal to their default omitted; vtables deduplicated exactly. The
 * result is byte-identical to proto/vectors/frames.json (tested).
 *
 * Reader: every offset and length read from an untrusted body is checked
 * against the body's bounds; any violation throws ProtocolError (never a
 * RangeError or TypeError).
 *
 * @module
 */

import { ProtocolError } from "./errors.js";

/** Scalar and reference field types used by the schema. */
export type FieldType = "bool" | "u8" | "u16" | "u32" | "u64" | "i64" | "bytes" | "string" | TableDef;

/** One field of a table: its name (as in the .fbs), type and default. Slot = index in the table. */
export interface FieldDef {
  readonly name: string;
  readonly type: FieldType;
  readonly def?: number | bigint;
}

/** A table definition: fields in declaration (slot) order. */
export interface TableDef {
  readonly table: string;
  readonly fields: readonly FieldDef[];
}

/** Field values as the generic codec sees them. */
export type FieldValue = boolean | number | bigint | Uint8Array | string | Record<string, unknown>[];
/** A decoded or to-be-encoded table. */
export type Fields = Record<string, unknown>;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

function inlineSize(t: FieldType): number {
  if (typeof t === "object") return 4;
  switch (t) {
    case "bool":
    case "u8":
      return 1;
    case "u16":
      return 2;
    case "u32":
    case "bytes":
    case "string":
      return 4;
    case "u64":
    case "i64":
      return 8;
  }
}

function checkUint(v: number | bigint | boolean, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new RangeError(`${String(v)} is not an integer in [0, ${max}]`);
  return n;
}

function toBigInt(v: number | bigint | boolean): bigint {
  if (typeof v === "number" && !Number.isInteger(v)) throw new RangeError(`${v} is not an integer`);
  return BigInt(v);
}

/** Back-to-front FlatBuffers builder (the subset V-Proto needs). */
export class Builder {
  private buf: Uint8Array;
  private view: DataView;
  private space: number;
  private minalign = 1;
  private vtable: number[] = [];
  private vtableInUse = 0;
  private objectEnd = 0;
  /** Offsets (from the end) of the vtables written so far, for deduplication. */
  private readonly vtables: number[] = [];

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
    this.space = initial;
  }

  /** Start a new buffer, keeping the allocated memory. */
  reset(): void {
    this.space = this.buf.length;
    this.minalign = 1;
    this.vtables.length = 0;
  }

  /** Bytes written so far, measured from the end of the buffer. */
  offset(): number {
    return this.buf.length - this.space;
  }

  private grow(): void {
    const old = this.buf;
    const size = old.length * 2;
    const next = new Uint8Array(size);
    next.set(old, size - old.length);
    this.space += size - old.length;
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Align so that `size` bytes can be written after `additional` more bytes. */
  private prep(size: number, additional: number): void {
    if (size > this.minalign) this.minalign = size;
    const alignSize = (~(this.buf.length - this.space + additional) + 1) & (size - 1);
    while (this.space < alignSize + size + additional) this.grow();
    for (let i = 0; i < alignSize; i++) this.buf[--this.space] = 0;
  }

  private putU8(v: number): void {
    this.prep(1, 0);
    this.buf[--this.space] = v & 0xff;
  }
  private putU16(v: number): void {
    this.prep(2, 0);
    this.space -= 2;
    this.view.setUint16(this.space, v, true);
  }
  private putU32(v: number): void {
    this.prep(4, 0);
    this.space -= 4;
    this.view.setUint32(this.space, v >>> 0, true);
  }
  private putI32(v: number): void {
    this.prep(4, 0);
    this.space -= 4;
    this.view.setInt32(this.space, v, true);
  }
  private put64(v: bigint, signed: boolean): void {
    if (signed ? BigInt.asIntN(64, v) !== v : BigInt.asUintN(64, v) !== v) {
      throw new RangeError(`${v} does not fit a ${signed ? "signed" : "unsigned"} 64-bit field`);
    }
    this.prep(8, 0);
    this.space -= 8;
    if (signed) this.view.setBigInt64(this.space, v, true);
    else this.view.setBigUint64(this.space, v, true);
  }
  private putOffset(off: number): void {
    this.prep(4, 0);
    this.putI32(this.offset() - off + 4);
  }

  /** A [ubyte] vector; returns its offset. */
  createBytes(data: Uint8Array): number {
    this.prep(4, data.length);
    while (this.space < data.length) this.grow();
    this.space -= data.length;
    this.buf.set(data, this.space);
    this.putU32(data.length);
    return this.offset();
  }

  /** A string (UTF-8 with a NUL terminator); returns its offset. */
  createString(text: string): number {
    const data = textEncoder.encode(text);
    this.prep(4, data.length + 1);
    this.buf[--this.space] = 0;
    this.space -= data.length;
    this.buf.set(data, this.space);
    this.putU32(data.length);
    return this.offset();
  }

  /** A vector of table offsets, in the given order; returns its offset. */
  createOffsetVector(offsets: readonly number[]): number {
    this.prep(4, offsets.length * 4);
    for (let i = offsets.length - 1; i >= 0; i--) this.putOffset(offsets[i] as number);
    this.putU32(offsets.length);
    return this.offset();
  }

  startTable(numFields: number): void {
    if (this.vtable.length < numFields) this.vtable = new Array<number>(numFields).fill(0);
    else this.vtable.fill(0, 0, numFields);
    this.vtableInUse = numFields;
    this.objectEnd = this.offset();
  }

  addScalar(slot: number, type: FieldType, value: number | bigint | boolean): void {
    switch (type) {
      case "bool":
        this.putU8(value ? 1 : 0);
        break;
      case "u8":
        this.putU8(checkUint(value, 0xff));
        break;
      case "u16":
        this.putU16(checkUint(value, 0xffff));
        break;
      case "u32":
        this.putU32(checkUint(value, 0xffffffff));
        break;
      case "u64":
        this.put64(toBigInt(value), false);
        break;
      case "i64":
        this.put64(toBigInt(value), true);
        break;
      default:
        throw new TypeError(`not a scalar type: ${String(type)}`);
    }
    this.vtable[slot] = this.offset();
  }

  addOffsetField(slot: number, off: number): void {
    this.putOffset(off);
    this.vtable[slot] = this.offset();
  }

  endTable(): number {
    this.putI32(0);
    const objectOffset = this.offset();
    let last = this.vtableInUse - 1;
    while (last >= 0 && this.vtable[last] === 0) last--;
    // Write the vtable (fields, then object size, then vtable size), as every builder does.
    for (let i = last; i >= 0; i--) {
      const at = this.vtable[i] as number;
      this.putU16(at === 0 ? 0 : objectOffset - at);
    }
    this.putU16(objectOffset - this.objectEnd);
    const vtSize = (last + 1 + 2) * 2;
    this.putU16(vtSize);
    // Reuse an identical earlier vtable (all of it: size, object size, fields) if there is one.
    const vt1 = this.space;
    for (const off of this.vtables) {
      const vt2 = this.buf.length - off;
      if (this.view.getUint16(vt2, true) !== vtSize) continue;
      let same = true;
      for (let k = 2; k < vtSize && same; k += 2) same = this.view.getUint16(vt1 + k, true) === this.view.getUint16(vt2 + k, true);
      if (same) {
        this.space = this.buf.length - objectOffset; // drop the new copy
        this.view.setInt32(this.space, off - objectOffset, true);
        return objectOffset;
      }
    }
    const vt = this.offset();
    this.vtables.push(vt);
    this.view.setInt32(this.buf.length - objectOffset, vt - objectOffset, true);
    return objectOffset;
  }

  /** Finish with `root` as the root table; returns the finished bytes (a copy). */
  finish(root: number): Uint8Array {
    return this.finishInto(root, 0, 0);
  }

  /** Finish, copying the bytes into a new Buffer with `head` bytes before and `tail` after them. */
  finishInto(root: number, head: number, tail: number): Buffer {
    this.prep(this.minalign, 4);
    this.putOffset(root);
    const n = this.buf.length - this.space;
    const out = Buffer.allocUnsafe(head + n + tail);
    out.set(this.buf.subarray(this.space), head);
    return out;
  }
}

function isEmpty(t: FieldType, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (t === "bytes") return (v as Uint8Array).length === 0;
  if (t === "string") return (v as string).length === 0;
  if (typeof t === "object") return (v as unknown[]).length === 0;
  return false;
}

function isDefault(f: FieldDef, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  const d = f.def ?? 0;
  if (typeof v === typeof d) return v === d;
  if (f.type === "bool") return Boolean(v) === Boolean(d);
  if (f.type === "u64" || f.type === "i64") return BigInt(v as number | bigint) === BigInt(d);
  return Number(v) === Number(d);
}

const isRef = (t: FieldType): boolean => t === "bytes" || t === "string" || typeof t === "object";

interface Plan {
  /** Slots of byte vectors, strings and table vectors, in declaration order. */
  readonly refs: readonly number[];
  /** Every slot in canonical order: largest first, ties in reverse declaration order. */
  readonly order: readonly number[];
}
const plans = new WeakMap<TableDef, Plan>();

function planFor(def: TableDef): Plan {
  let plan = plans.get(def);
  if (plan === undefined) {
    const slots = def.fields.map((_f, slot) => slot);
    plan = {
      refs: slots.filter((slot) => isRef((def.fields[slot] as FieldDef).type)),
      order: [...slots]
        .reverse()
        .sort((a, c) => inlineSize((def.fields[c] as FieldDef).type) - inlineSize((def.fields[a] as FieldDef).type)),
    };
    plans.set(def, plan);
  }
  return plan;
}

function buildTable(b: Builder, def: TableDef, values: Fields): number {
  const plan = planFor(def);
  const refs: number[] = [];
  for (const slot of plan.refs) {
    const f = def.fields[slot] as FieldDef;
    const v = values[f.name];
    if (isEmpty(f.type, v)) continue;
    if (f.type === "bytes") refs[slot] = b.createBytes(v as Uint8Array);
    else if (f.type === "string") refs[slot] = b.createString(v as string);
    else {
      const sub = f.type as TableDef;
      const children = (v as Fields[]).map((c) => buildTable(b, sub, c));
      refs[slot] = b.createOffsetVector(children);
    }
  }
  b.startTable(def.fields.length);
  for (const slot of plan.order) {
    const f = def.fields[slot] as FieldDef;
    const ref = refs[slot];
    if (ref !== undefined) b.addOffsetField(slot, ref);
    else if (!isRef(f.type)) {
      const v = values[f.name];
      if (!isDefault(f, v)) b.addScalar(slot, f.type, v as number | bigint | boolean);
    }
  }
  return b.endTable();
}

// One builder for every encode: JavaScript runs one encode at a time, and the
// result is copied out, so its memory is reused rather than reallocated.
const shared = new Builder(1024);

/** Encode `values` as a canonical FlatBuffer with root table `def`. */
export function encodeTable(def: TableDef, values: Fields): Uint8Array {
  return encodeTableInto(def, values, 0, 0);
}

/**
 * Encode like {@link encodeTable}, into a new Buffer with `head` free bytes
 * before the body and `tail` after it (room for a frame header and trailer).
 */
export function encodeTableInto(def: TableDef, values: Fields, head: number, tail: number): Buffer {
  shared.reset();
  try {
    return shared.finishInto(buildTable(shared, def, values), head, tail);
  } catch (e) {
    shared.reset();
    throw e;
  }
}

// ---- reading (untrusted input) ------------------------------------------------

function bad(msg: string): never {
  throw new ProtocolError(`malformed body: ${msg}`);
}

/** What readTable needs from a table: a real one, or the all-defaults empty body. */
interface TableReader {
  scalar(slot: number, type: FieldType, def: number | bigint | undefined): unknown;
  bytes(slot: number): Uint8Array;
  string(slot: number): string;
  tables(slot: number): TableReader[];
}

/** A bounds-checked view of one table inside a body. */
class TableView implements TableReader {
  private readonly vt: number;
  private readonly vtLen: number;

  constructor(
    private readonly buf: Uint8Array,
    private readonly dv: DataView,
    private readonly pos: number,
  ) {
    if (pos < 0 || pos + 4 > buf.length) bad("table offset outside the body");
    const vt = pos - dv.getInt32(pos, true);
    if (vt < 0 || vt + 4 > buf.length) bad("vtable outside the body");
    const vtLen = dv.getUint16(vt, true);
    if (vtLen < 4 || vtLen % 2 !== 0 || vt + vtLen > buf.length) bad("bad vtable size");
    const objLen = dv.getUint16(vt + 2, true);
    if (pos + objLen > buf.length) bad("table runs past the body");
    this.vt = vt;
    this.vtLen = vtLen;
  }

  /** Absolute position of the field in `slot`, or 0 if absent; checks `size` bytes fit. */
  field(slot: number, size: number): number {
    const at = 4 + slot * 2;
    if (at + 2 > this.vtLen) return 0;
    const rel = this.dv.getUint16(this.vt + at, true);
    if (rel === 0) return 0;
    const p = this.pos + rel;
    if (p + size > this.buf.length) bad("field outside the body");
    return p;
  }

  private deref(p: number): number {
    const target = p + this.dv.getUint32(p, true);
    if (target + 4 > this.buf.length) bad("offset outside the body");
    return target;
  }

  scalar(slot: number, type: FieldType, def: number | bigint | undefined): unknown {
    const size = inlineSize(type);
    const p = this.field(slot, size);
    const is64 = type === "u64" || type === "i64";
    if (p === 0) {
      if (type === "bool") return Boolean(def);
      return is64 ? BigInt(def ?? 0) : Number(def ?? 0);
    }
    switch (type) {
      case "bool":
        return this.buf[p] !== 0;
      case "u8":
        return this.buf[p];
      case "u16":
        return this.dv.getUint16(p, true);
      case "u32":
        return this.dv.getUint32(p, true);
      case "u64":
        return this.dv.getBigUint64(p, true);
      case "i64":
        return this.dv.getBigInt64(p, true);
      default:
        return bad("not a scalar");
    }
  }

  bytes(slot: number): Uint8Array {
    const p = this.field(slot, 4);
    if (p === 0) return new Uint8Array(0);
    const v = this.deref(p);
    const n = this.dv.getUint32(v, true);
    if (v + 4 + n > this.buf.length) bad("vector runs past the body");
    return this.buf.subarray(v + 4, v + 4 + n);
  }

  string(slot: number): string {
    const data = this.bytes(slot);
    try {
      return textDecoder.decode(data);
    } catch {
      return bad("invalid UTF-8 in a string");
    }
  }

  tables(slot: number): TableView[] {
    const p = this.field(slot, 4);
    if (p === 0) return [];
    const v = this.deref(p);
    const n = this.dv.getUint32(v, true);
    if (v + 4 + n * 4 > this.buf.length) bad("vector runs past the body");
    const out: TableView[] = [];
    for (let i = 0; i < n; i++) {
      const e = v + 4 + i * 4;
      out.push(new TableView(this.buf, this.dv, e + this.dv.getUint32(e, true)));
    }
    return out;
  }
}

function readTable(t: TableReader, def: TableDef): Fields {
  const out: Fields = {};
  def.fields.forEach((f, slot) => {
    if (f.type === "bytes") out[f.name] = t.bytes(slot);
    else if (f.type === "string") out[f.name] = t.string(slot);
    else if (typeof f.type === "object") {
      const sub = f.type;
      out[f.name] = t.tables(slot).map((c) => readTable(c, sub));
    } else out[f.name] = t.scalar(slot, f.type, f.def);
  });
  return out;
}

/**
 * Decode an untrusted body with root table `def`. An empty body is the table
 * with every field at its default (spec section 1). Throws only ProtocolError.
 */
export function decodeTable(def: TableDef, body: Uint8Array): Fields {
  if (body.length === 0) return readTable(new EmptyView(), def);
  if (body.length < 4) bad("body shorter than a root offset");
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  try {
    return readTable(new TableView(body, dv, dv.getUint32(0, true)), def);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    // DataView getters throw RangeError past the end; report it as malformed.
    return bad(e instanceof Error ? e.message : String(e));
  }
}

class EmptyView implements TableReader {
  scalar(_slot: number, type: FieldType, def: number | bigint | undefined): unknown {
    if (type === "bool") return Boolean(def);
    return type === "u64" || type === "i64" ? BigInt(def ?? 0) : Number(def ?? 0);
  }
  bytes(): Uint8Array {
    return new Uint8Array(0);
  }
  string(): string {
    return "";
  }
  tables(): TableReader[] {
    return [];
  }
}
