/** Typed values against the shared value vectors (proto/vectors/values.json). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeValue, encodeValue, type Value } from "../src/values.js";
import { ProtocolError } from "../src/errors.js";
import { caseValue, hex, valueCases } from "./helpers.js";

const cases = valueCases();

test("value vectors cover every kind, negatives and > 2^53", () => {
  assert.deepEqual(new Set(cases.map((c) => c.kind)), new Set([0, 1, 2, 3]));
  assert.ok(cases.some((c) => typeof caseValue(c) === "bigint"));
});

for (const c of cases) {
  test(`value ${c.name}: encodes as the Python SDK does`, () => {
    const [kind, data] = encodeValue(caseValue(c) as Value);
    assert.equal(kind, c.kind);
    assert.equal(data.toString("hex"), c.payload_hex);
  });
  test(`value ${c.name}: decodes to the same value and type`, () => {
    const v = decodeValue(c.kind, hex(c.payload_hex));
    assert.deepEqual(v, caseValue(c));
    assert.equal(typeof v, typeof caseValue(c));
  });
}

test("integers: numbers up to 2^53, bigints beyond, whole numbers are Int", () => {
  assert.equal(decodeValue(2, hex("ffffffffffff1f00")), 2 ** 53 - 1);
  assert.equal(decodeValue(2, hex("0000000000002000")), 2n ** 53n);
  assert.deepEqual(encodeValue(2n ** 63n - 1n), [2, hex("ffffffffffffff7f")]);
  assert.equal(encodeValue(1e18)[0], 2);
  assert.equal(encodeValue(1.5)[0], 3);
  assert.throws(() => encodeValue(2n ** 63n), RangeError);
  assert.throws(() => encodeValue(NaN), TypeError);
  assert.throws(() => encodeValue({ a: 1n } as unknown as Value), TypeError);
});

test("malformed stored values raise ProtocolError; unknown kinds are bytes", () => {
  assert.throws(() => decodeValue(2, hex("0102")), ProtocolError);
  assert.throws(() => decodeValue(3, Buffer.from("{nope")), ProtocolError);
  assert.throws(() => decodeValue(1, hex("ff")), ProtocolError);
  assert.deepEqual(decodeValue(9, hex("0102")), hex("0102"));
});
