/** TTL parsing, endpoints, pool options and error classes (no sockets). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseTtlMs } from "../src/durations.js";
import { formatEndpoint, parseEndpoint } from "../src/endpoint.js";
import { VelocityPool } from "../src/pool.js";
import {
  ConnectionError,
  ErrorCode,
  errorFromWire,
  RedirectError,
  UnknownOutcomeError,
  VelocityError,
  WrongTypeError,
} from "../src/errors.js";

test("TTLs as the Python SDK reads them", () => {
  assert.equal(parseTtlMs(2), 2000);
  assert.equal(parseTtlMs(0.25), 250);
  assert.equal(parseTtlMs("2h"), 7_200_000);
  assert.equal(parseTtlMs("30s"), 30_000);
  assert.equal(parseTtlMs("1500ms"), 1500);
  assert.equal(parseTtlMs("1h30m"), 5_400_000);
  assert.equal(parseTtlMs("1.5d"), 129_600_000);
  assert.equal(parseTtlMs(" 10 "), 10_000);
  for (const bad of ["", "2x", "h", "1h 30m", "-1s", "0", 0, -3, Infinity]) {
    assert.throws(() => parseTtlMs(bad as string), RangeError, String(bad));
  }
});

test("endpoints: host, host:port, vdb://, IPv6, default port 2005", () => {
  assert.deepEqual(parseEndpoint("alpha-cluster.vdb.io"), { host: "alpha-cluster.vdb.io", port: 2005 });
  assert.deepEqual(parseEndpoint("10.0.0.1:7000"), { host: "10.0.0.1", port: 7000 });
  assert.deepEqual(parseEndpoint("vdb://h:1"), { host: "h", port: 1 });
  assert.deepEqual(parseEndpoint("vdb://h"), { host: "h", port: 2005 });
  assert.deepEqual(parseEndpoint("[::1]:9"), { host: "::1", port: 9 });
  assert.equal(formatEndpoint({ host: "::1", port: 9 }), "vdb://[::1]:9");
  for (const bad of ["http://h:1", "h:x", "h:0", "h:70000", "vdb://", "vdb://h:1/x"]) {
    assert.throws(() => parseEndpoint(bad), TypeError, bad);
  }
});

test("pool options: node list, CA as PEM text, bad pool size", () => {
  const p = new VelocityPool({ node: ["a:1", "vdb://b:2"], ca: "-----BEGIN CERTIFICATE-----\n", auth: "t" });
  assert.equal(String(p), "VelocityPool(vdb://a:1, poolSize=4)");
  assert.throws(() => new VelocityPool({ poolSize: 0 }), RangeError);
  assert.throws(() => new VelocityPool({ ca: "/nonexistent/ca.crt" }));
});

test("wire errors map to classes carrying their codes", () => {
  const r = errorFromWire(14, "not the primary", "vdb://p:1", 50);
  assert.ok(r instanceof RedirectError && r instanceof VelocityError);
  assert.equal(r.code, ErrorCode.REDIRECT);
  assert.equal(r.primary, "vdb://p:1");
  assert.equal(r.retryAfterMs, 50);
  assert.equal(r.codeName, "REDIRECT");
  assert.ok(errorFromWire(8, "x") instanceof WrongTypeError);
  const unknown = errorFromWire(999, "future");
  assert.equal(unknown.constructor, VelocityError);
  assert.equal(unknown.code, 999);
  assert.ok(errorFromWire(6, "x").fatal);
  assert.ok(!errorFromWire(8, "x").fatal);
});

test("mayHaveHappened: no reply, or a held write's NOT_ENOUGH_REPLICAS/TIMEOUT", () => {
  assert.ok(new UnknownOutcomeError("lost", 0x04).mayHaveHappened);
  assert.ok(errorFromWire(20, "no replica acknowledged").mayHaveHappened);
  assert.ok(errorFromWire(18, "sync timeout").mayHaveHappened);
  assert.ok(!errorFromWire(14, "not the primary").mayHaveHappened);
  assert.ok(!errorFromWire(8, "wrong type").mayHaveHappened);
  assert.ok(!new ConnectionError("not sent").mayHaveHappened);
});
