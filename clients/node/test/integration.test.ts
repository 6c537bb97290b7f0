/**
 * Against real engine processes: TLS 1.3 + token, auth and TLS failures,
 * plaintext, every operation, pipelining, a server killed mid-request.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { readFileSync } from "node:fs";
import {
  AuthFailedError,
  ConnectionError,
  InvalidArgumentError,
  NotIntegerError,
  OverflowError,
  TlsError,
  UnknownOutcomeError,
  VelocityError,
  VelocityPool,
  WrongTypeError,
} from "../src/index.js";
import { type EngineInfo, Engines } from "./engines.js";

let engines: Engines;
let tls: EngineInfo;
let plain: EngineInfo;
let other: EngineInfo; // an insecure engine of its own: a TLS client must fail against it

const tlsPool = (extra: Record<string, unknown> = {}): VelocityPool =>
  new VelocityPool({ node: tls.endpoint, auth: tls.token, ca: tls.ca, timeoutMs: 15_000, ...extra });

before(async () => {
  engines = new Engines();
  tls = await engines.start("tls");
  plain = await engines.start("plain", { insecure: true });
  other = plain;
});

after(async () => {
  await engines.close();
});

describe("TLS 1.3 + token", () => {
  test("the README snippet", async () => {
    const vdb = new VelocityPool({ node: tls.endpoint, auth: tls.token, ca: tls.ca });
    await vdb.connect();
    try {
      assert.equal(await vdb.set("session:0xF1", { active: true }, { ttl: "2h" }), true);
      assert.deepEqual(await vdb.get("session:0xF1"), { active: true });
      const before = await vdb.incr("counters:req_total", 1);
      assert.equal(await vdb.incr("counters:req_total", 1), (before as number) + 1);
      const ttl = await vdb.ttl("session:0xF1");
      assert.ok(ttl !== null && ttl > 7100 && ttl <= 7200, `ttl ${ttl}`);
    } finally {
      await vdb.close();
    }
  });

  test("CA as PEM text, token from VDB_TOKEN", async () => {
    process.env["VDB_TOKEN"] = tls.token;
    try {
      const vdb = new VelocityPool({ node: tls.endpoint, ca: readFileSync(tls.ca!, "utf8"), poolSize: 1 });
      await vdb.connect();
      assert.deepEqual(await vdb.ping(Buffer.from("hi")), Buffer.from("hi"));
      await vdb.close();
    } finally {
      delete process.env["VDB_TOKEN"];
    }
  });

  test("every operation, with the Python SDK's semantics", async () => {
    const vdb = await tlsPool().connect();
    try {
      const k = (s: string): string => `ops:${s}`;
      // typed values
      await vdb.set(k("b"), Buffer.from([0, 1, 255]));
      await vdb.set(k("s"), "héllo");
      await vdb.set(k("i"), -42);
      await vdb.set(k("big"), 2n ** 62n);
      await vdb.set(k("j"), { a: [1, 2.5, null], t: true });
      await vdb.set(k("null"), null);
      assert.deepEqual(await vdb.get(k("b")), Buffer.from([0, 1, 255]));
      assert.equal(await vdb.get(k("s")), "héllo");
      assert.equal(await vdb.get(k("i")), -42);
      assert.equal(await vdb.get(k("big")), 2n ** 62n);
      assert.deepEqual(await vdb.get(k("j")), { a: [1, 2.5, null], t: true });
      assert.equal(await vdb.get(k("null")), null);
      assert.equal(await vdb.get(k("missing")), undefined);
      // nx / xx
      assert.equal(await vdb.set(k("nx"), 1, { nx: true }), true);
      assert.equal(await vdb.set(k("nx"), 2, { nx: true }), false);
      assert.equal(await vdb.set(k("xx"), 1, { xx: true }), false);
      assert.equal(await vdb.set(k("nx"), 3, { xx: true }), true);
      assert.equal(await vdb.get(k("nx")), 3);
      await assert.rejects(vdb.set(k("nx"), 1, { nx: true, xx: true }), TypeError);
      // exists / del
      assert.equal(await vdb.exists(k("nx")), true);
      assert.equal(await vdb.del(k("nx")), true);
      assert.equal(await vdb.del(k("nx")), false);
      assert.equal(await vdb.exists(k("nx")), false);
      // incr / decr, bigint beyond 2^53, errors carrying codes
      assert.equal(await vdb.incr(k("c")), 1);
      assert.equal(await vdb.incr(k("c"), 10), 11);
      assert.equal(await vdb.decr(k("c")), 10);
      assert.equal(await vdb.decr(k("c"), 15), -5);
      assert.equal(await vdb.incr(k("c"), 2n ** 60n), 2n ** 60n - 5n);
      await vdb.set(k("max"), 2n ** 63n - 1n);
      await assert.rejects(vdb.incr(k("max")), (e: unknown) => e instanceof OverflowError && e.code === 9);
      await assert.rejects(vdb.incr(k("j")), (e: unknown) => e instanceof WrongTypeError && e.code === 8);
      await vdb.set(k("text"), "abc");
      await assert.rejects(vdb.incr(k("text")), NotIntegerError);
      await vdb.set(k("dec"), "12");
      assert.equal(await vdb.incr(k("dec")), 13);
      // expire / persist / ttl / pttl
      assert.equal(await vdb.pttl(k("missing")), -2);
      assert.equal(await vdb.ttl(k("missing")), null);
      assert.equal(await vdb.pttl(k("s")), -1);
      assert.equal(await vdb.expire(k("s"), "1h30m"), true);
      const p = await vdb.pttl(k("s"));
      assert.ok(p > 5_390_000 && p <= 5_400_000, `pttl ${p}`);
      assert.equal(await vdb.persist(k("s")), true);
      assert.equal(await vdb.persist(k("s")), false);
      assert.equal(await vdb.expire(k("missing"), 5), false);
      await vdb.set(k("short"), 1, { ttl: "1500ms" });
      const ms = await vdb.pttl(k("short"));
      assert.ok(ms > 0 && ms <= 1500, `pttl ${ms}`);
      await assert.rejects(vdb.set(k("bad"), 1, { ttl: "soon" }), RangeError);
      // cas
      assert.equal(await vdb.cas(k("lock"), null, "owner-1", { ttl: 10 }), true);
      assert.equal(await vdb.cas(k("lock"), null, "owner-2"), false);
      assert.equal(await vdb.cas(k("lock"), "owner-2", "owner-3"), false);
      assert.equal(await vdb.cas(k("lock"), "owner-1", "owner-3"), true);
      assert.equal(await vdb.get(k("lock")), "owner-3");
      assert.equal(await vdb.cas(k("i"), -42, -41), true);
      assert.equal(await vdb.cas(k("i"), "-41", 0), false, "kind matters: the string '-41' is not the Int -41");
      // mset / mget
      await vdb.mset({ [k("m1")]: "one", [k("m2")]: 2, [k("m3")]: { three: 3 } });
      assert.deepEqual(await vdb.mget([k("m1"), k("nope"), k("m2"), k("m3")]), ["one", undefined, 2, { three: 3 }]);
      await vdb.mset(new Map<string, string>([[k("m4"), "x"]]), { ttl: 60 });
      assert.ok((await vdb.pttl(k("m4"))) > 0);
      // mset is atomic: an empty key fails the whole request, nothing is written
      await assert.rejects(vdb.mset([[k("m5"), "y"], ["", "z"]]), InvalidArgumentError);
      assert.equal(await vdb.exists(k("m5")), false);
      // scan: key order, across pages
      const keys = Array.from({ length: 25 }, (_, i) => `scan:${String(i).padStart(3, "0")}`);
      await vdb.mset(keys.map((key) => [key, 1] as const));
      const seen: string[] = [];
      for await (const key of vdb.scan("scan:", { count: 7 })) seen.push(key);
      assert.deepEqual(seen, keys);
      // info / ping
      const info = await vdb.info();
      assert.equal(typeof info, "object");
      assert.ok(Object.keys(info).length > 0);
      assert.deepEqual(await vdb.ping(), Buffer.alloc(0));
    } finally {
      await vdb.close();
    }
  });

  test("pipelining: 5000 concurrent requests over 4 connections, replies matched in order", async () => {
    const vdb = await tlsPool().connect();
    try {
      const clients = (await vdb.info("clients"))["clients"] as { connected: number };
      assert.ok(clients.connected >= 4, `the pool opened ${clients.connected} connections`);
      const n = 5000;
      await Promise.all(Array.from({ length: n }, (_, i) => vdb.set(`pipe:${i}`, i % 2 ? `v${i}` : i)));
      const got = await Promise.all(Array.from({ length: n }, (_, i) => vdb.get(`pipe:${i}`)));
      got.forEach((v, i) => assert.equal(v, i % 2 ? `v${i}` : i));
      const counters = await Promise.all(Array.from({ length: 1000 }, () => vdb.incr("pipe:counter")));
      assert.deepEqual([...counters].sort((a, b) => Number(a) - Number(b)), Array.from({ length: 1000 }, (_, i) => i + 1));
    } finally {
      await vdb.close();
    }
  });

  test("a wrong token is AuthFailedError (code 6)", async () => {
    const vdb = tlsPool({ auth: "not-the-token" });
    await assert.rejects(vdb.connect(), (e: unknown) => e instanceof AuthFailedError && e.code === 6);
    await vdb.close();
  });

  test("a wrong CA is a TlsError, not retried", async () => {
    const wrong = readFileSync(new URL("../../test/fixtures/other-ca.crt", import.meta.url), "utf8");
    const vdb = tlsPool({ ca: wrong });
    const t0 = Date.now();
    await assert.rejects(vdb.connect(), TlsError);
    assert.ok(Date.now() - t0 < 7000, "a TLS failure is not retried until the deadline");
    await vdb.close();
  });

  test("no CA: the system roots do not trust the server", async () => {
    const vdb = new VelocityPool({ node: tls.endpoint, auth: tls.token, timeoutMs: 3000 });
    await assert.rejects(vdb.connect(), TlsError);
    await vdb.close();
  });

  test("plaintext to a TLS server is refused", async () => {
    const vdb = new VelocityPool({ node: tls.endpoint, insecure: true, timeoutMs: 1500 });
    await assert.rejects(vdb.connect(), (e: unknown) => e instanceof ConnectionError);
    await vdb.close();
  });
});

describe("--insecure server", () => {
  test("plaintext works without a token", async () => {
    const vdb = await new VelocityPool({ node: plain.endpoint, insecure: true, poolSize: 2 }).connect();
    try {
      await vdb.set("k", "v");
      assert.equal(await vdb.get("k"), "v");
      assert.equal(await vdb.incr("n", 5n), 5);
    } finally {
      await vdb.close();
    }
  });

  test("TLS to a plaintext server is a TlsError", async () => {
    const vdb = new VelocityPool({ node: other.endpoint, auth: "x", ca: tls.ca, timeoutMs: 2000 });
    await assert.rejects(vdb.connect(), TlsError);
    await vdb.close();
  });
});

describe("server killed mid-request", () => {
  test("writes in flight are UnknownOutcomeError, never retried; acknowledged writes survive", async (t) => {
    const k = await engines.start("killed", { args: ["--appendfsync", "always"] });
    const vdb = new VelocityPool({ node: k.endpoint, auth: k.token, ca: k.ca, poolSize: 4, timeoutMs: 3000 });
    await vdb.connect();
    let acked = 0;
    let unknown = 0;
    const others: unknown[] = [];
    let stop = false;
    const loop = async (): Promise<void> => {
      while (!stop) {
        try {
          await vdb.incr("killed:counter");
          acked++;
        } catch (e) {
          if (e instanceof UnknownOutcomeError) unknown++;
          else others.push(e);
          return;
        }
      }
    };
    const loops = Array.from({ length: 16 }, () => loop());
    while (acked < 300) await new Promise((r) => setImmediate(r));
    await engines.kill("killed");
    await Promise.all(loops);
    stop = true;
    assert.ok(unknown >= 1, `no request was in flight: acked ${acked}, unknown ${unknown}`);
    for (const e of others) {
      // A loop between two requests when the server died gets a ConnectionError (nothing sent).
      assert.ok(e instanceof ConnectionError, `unexpected ${String(e)}`);
    }
    await engines.restart("killed");
    const value = (await vdb.get("killed:counter")) as number; // the pool reconnects on its own
    t.diagnostic(`acked ${acked}, unknown outcome ${unknown}, not sent ${others.length}, counter after restart ${value}`);
    assert.ok(value >= acked && value <= acked + unknown, `counter ${value}, acked ${acked}, unknown ${unknown}`);
    await vdb.close();
  });

  test("a request to a dead server fails after backoff within the deadline", async () => {
    const vdb = new VelocityPool({ node: "127.0.0.1:1", insecure: true, timeoutMs: 600 });
    const t0 = Date.now();
    await assert.rejects(vdb.get("x"), (e: unknown) => e instanceof ConnectionError && e instanceof VelocityError);
    const took = Date.now() - t0;
    assert.ok(took >= 200 && took < 2000, `took ${took} ms`);
    await vdb.close();
  });
});
