/**
 * A write loop that must survive the loss of the primary: the e2e suite's Node
 * client (`e2e/test_sdk_clients.py`), shipped in the `velocity/clients:dev` image
 * (hack/images/build.sh compiles it next to the packed `@velocity/core`).
 *
 *     VDB_NODE=vdb://NAME.NAMESPACE.svc:2005 VDB_TOKEN=... VDB_CA=/ca/ca.crt \
 *         node e2e-writer.js PREFIX [STOP_FILE]
 *
 * In a pod the token comes from the `NAME-auth` Secret (env `VDB_TOKEN`) and the
 * CA from the `NAME-ca` Secret (mounted, `VDB_CA`); `new VelocityPool()` reads
 * `VDB_NODE`, `VDB_TOKEN` and `VDB_CA` by itself. The loop writes `PREFIX:i = i`
 * (i = 0, 1, ...) one after the other and reads each acknowledged key back at
 * once (a linearizable GET: it must see its own write), until STOP_FILE (default
 * /work/stop) exists. A failed write is sent again with the same key and value
 * (idempotent) until it is acknowledged or 30 s have passed; then every
 * acknowledged key is read back.
 *
 * Output, one line each: `READY`, `ACKED n` every 50 acknowledged writes, and
 * `RESULT {json}` with the same fields as the Rust client
 * (clients/rust/examples/e2e_client.rs): acked, unknown (UnknownOutcomeError, or
 * NOT_ENOUGH_REPLICAS, which a sync-mode primary also answers when a queued write
 * timed out), refused (failed without effect), errors (the two together, each
 * followed by a retry), failed (keys never acknowledged within 30 s), error_kinds,
 * reads, stale_reads, read_errors, longest_gap_s / gap_at, lost / lost_count.
 */
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { NotEnoughReplicasError, UnknownOutcomeError, VelocityPool, type Value } from "@velocity/core";

const RETRY_FOR_MS = 30_000;
const PAUSE_MS = 20;
const CHUNK = 200;

interface Counts {
  acked: number[];
  unknown: number;
  refused: number;
  failed: number;
  errorKinds: Record<string, number>;
  reads: number;
  staleReads: string[];
  readErrors: number;
  longestGapMs: number;
  gapAt: number | null;
}

function kindOf(e: unknown): string {
  return e instanceof Error ? e.constructor.name : typeof e;
}

async function writeLoop(vdb: VelocityPool, prefix: string, stop: string): Promise<Counts> {
  const c: Counts = {
    acked: [], unknown: 0, refused: 0, failed: 0, errorKinds: {},
    reads: 0, staleReads: [], readErrors: 0, longestGapMs: 0, gapAt: null,
  };
  let lastAck = performance.now();
  for (let i = 0; !existsSync(stop); i++) {
    const key = `${prefix}:${i}`;
    const giveUp = performance.now() + RETRY_FOR_MS;
    for (;;) {
      try {
        await vdb.set(key, i);
      } catch (e) {
        const kind = kindOf(e);
        c.errorKinds[kind] = (c.errorKinds[kind] ?? 0) + 1;
        if (e instanceof UnknownOutcomeError || e instanceof NotEnoughReplicasError) c.unknown++;
        else c.refused++;
        if (performance.now() > giveUp) {
          c.failed++;
          break;
        }
        await sleep(100);
        continue;
      }
      const now = performance.now();
      if (now - lastAck > c.longestGapMs) {
        c.longestGapMs = now - lastAck;
        c.gapAt = Date.now() / 1000;
      }
      lastAck = now;
      c.acked.push(i);
      if (c.acked.length % 50 === 0) console.log(`ACKED ${c.acked.length}`);
      c.reads++;
      try {
        const got: Value | undefined = await vdb.get(key);
        if (got !== i) c.staleReads.push(`${key} read ${String(got)}`);
      } catch {
        c.readErrors++;
      }
      break;
    }
    await sleep(PAUSE_MS);
  }
  return c;
}

/** The acknowledged keys that do not read back as written (each chunk retried for up to 60 s). */
async function lostKeys(vdb: VelocityPool, prefix: string, acked: number[]): Promise<number[]> {
  const lost: number[] = [];
  for (let start = 0; start < acked.length; start += CHUNK) {
    const chunk = acked.slice(start, start + CHUNK);
    const deadline = Date.now() + 60_000;
    let values: (Value | undefined)[];
    for (;;) {
      try {
        values = await vdb.mget(chunk.map((n) => `${prefix}:${n}`));
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        console.error(`read-back: ${String(e)}; retrying`);
        await sleep(500);
      }
    }
    chunk.forEach((n, k) => {
      if (values[k] !== n) lost.push(n);
    });
  }
  return lost;
}

async function main(): Promise<void> {
  const prefix = process.argv[2] ?? "node";
  const stop = process.argv[3] ?? "/work/stop";
  // node, auth and ca: VDB_NODE, VDB_TOKEN and VDB_CA.
  const vdb = new VelocityPool({ poolSize: 2, timeoutMs: 5_000, clientName: "e2e-node" });
  await vdb.connect();
  console.log("READY");
  const c = await writeLoop(vdb, prefix, stop);
  const lost = await lostKeys(vdb, prefix, c.acked);
  const result = {
    client: "node",
    node_version: process.version,
    acked: c.acked.length,
    unknown: c.unknown,
    refused: c.refused,
    errors: c.unknown + c.refused,
    failed: c.failed,
    error_kinds: c.errorKinds,
    reads: c.reads,
    stale_reads: c.staleReads.slice(0, 20),
    stale_read_count: c.staleReads.length,
    read_errors: c.readErrors,
    longest_gap_s: Math.round(c.longestGapMs) / 1000,
    gap_at: c.gapAt,
    lost: lost.slice(0, 50),
    lost_count: lost.length,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  await vdb.close();
}

await main();
