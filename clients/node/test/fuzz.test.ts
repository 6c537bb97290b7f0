/**
 * Fuzzing the reply path with mutated vector frames: whatever the bytes, the
 * decoder throws nothing but the SDK's error classes, and a pool talking to a
 * server that sends garbage rejects requests with those classes and keeps going.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "node:test";
import { replyBody } from "../src/connection.js";
import { VelocityError } from "../src/errors.js";
import { decodeTable, encodeTable } from "../src/flatbuf.js";
import { crc32, encodeFrame, FrameDecoder, HEADER_SIZE } from "../src/frame.js";
import * as msg from "../src/messages.js";
import { VelocityPool } from "../src/pool.js";
import { decodeValue } from "../src/values.js";
import { frameVectors, hex, prng } from "./helpers.js";

const ITERATIONS = Number(process.env["FUZZ_ITERATIONS"] ?? 30000);
const frames = frameVectors().valid.map((v) => hex(v.frame_hex));
const defs = Object.values(msg.TABLES);

function mutate(rand: () => number, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = 1 + Math.floor(rand() * 4);
  for (let k = 0; k < n; k++) {
    const op = Math.floor(rand() * 6);
    const at = Math.floor(rand() * Math.max(1, b.length));
    if (op === 0) b[at] = (b[at] ?? 0) ^ (1 << Math.floor(rand() * 8));
    else if (op === 1) b[at] = Math.floor(rand() * 256);
    else if (op === 2) b = b.subarray(0, at);
    else if (op === 3) b = Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(rand() * 256)]), b.subarray(at)]);
    else if (op === 4 && b.length >= 4) b.writeUInt32LE(Math.floor(rand() * 2 ** 32), Math.min(at, b.length - 4));
    else if (b.length > 0) b[at] = [0, 1, 0x7f, 0x80, 0xff][Math.floor(rand() * 5)] as number;
  }
  return b;
}

/** Re-frame a mutated body with a correct header and CRC, so it reaches the table decoder. */
function reframe(opcode: number, body: Buffer): Buffer {
  return encodeFrame(opcode, 0, body);
}

function exercise(input: Buffer): void {
  const got = new FrameDecoder(1 << 20).feed(input);
  for (const f of got) {
    for (const def of defs) {
      const t = decodeTable(def, f.body);
      if ("kind" in t && "value" in t) decodeValue(t.kind as number, t.value as Uint8Array);
      for (const e of (t.entries as Record<string, unknown>[] | undefined) ?? []) decodeValue(e.kind as number, e.value as Uint8Array);
    }
    replyBody(f.opcode & 0x7f, f);
  }
}

test(`decoder survives ${ITERATIONS} mutated vector frames`, () => {
  const rand = prng(0x5eed);
  let rejected = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const src = frames[i % frames.length] as Buffer;
    const raw = i % 2 === 0;
    const input = raw ? mutate(rand, src) : reframe(src[4] as number, mutate(rand, src.subarray(HEADER_SIZE, src.length - 4)));
    try {
      exercise(input);
    } catch (e) {
      if (!(e instanceof VelocityError)) {
        assert.fail(`iteration ${i}: ${input.toString("hex")} threw ${(e as Error)?.constructor?.name}: ${String(e)}`);
      }
      rejected++;
    }
  }
  assert.ok(rejected > ITERATIONS / 10, `only ${rejected} mutations were rejected: the fuzzer is not biting`);
});

test("crc of a re-framed body is checked", () => {
  const f = reframe(0x90, Buffer.from("abc"));
  assert.equal(f.readUInt32LE(f.length - 4), crc32(f.subarray(0, f.length - 4)));
});

test("a server sending mutated replies never crashes the client", async () => {
  const rand = prng(42);
  const replies = frames.filter((f) => (f[4] as number) & 0x80);
  const hello = encodeFrame(0x81, 0, encodeTable(msg.HelloResponse, { protocol_version: 1, node_id: "fuzz" }));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    const d = new FrameDecoder();
    s.on("data", (chunk: Buffer) => {
      let got;
      try {
        got = d.feed(chunk);
      } catch {
        s.destroy();
        return;
      }
      for (const f of got) {
        if (f.opcode === msg.Opcode.HELLO) s.write(hello);
        else s.write(mutate(rand, replies[Math.floor(rand() * replies.length)] as Buffer));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const pool = new VelocityPool({ node: `127.0.0.1:${port}`, insecure: true, poolSize: 2, timeoutMs: 300 });
  let ok = 0;
  let failed = 0;
  try {
    for (let round = 0; round < 40; round++) {
      const ops = Array.from({ length: 10 }, (_, i) =>
        i % 3 === 0 ? pool.get(`k${i}`) : i % 3 === 1 ? pool.mget(["a", "b"]) : pool.scan("p").next(),
      );
      for (const r of await Promise.allSettled(ops)) {
        if (r.status === "fulfilled") ok++;
        else {
          assert.ok(r.reason instanceof VelocityError, `rejected with ${String(r.reason)}`);
          failed++;
        }
      }
    }
  } finally {
    await pool.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  }
  assert.ok(failed > 0, "no request failed: the server did not send garbage");
  assert.equal(ok + failed, 400);
});
