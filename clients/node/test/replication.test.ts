/**
 * Against a primary and replicas (tests/integration/replication/cluster.py via
 * test/engines.py): REDIRECT from a replica, stale reads, a planned switchover
 * under load with every acknowledged write read back, and a primary kill.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { UnknownOutcomeError, VelocityPool, formatEndpoint, parseEndpoint } from "../src/index.js";
import { type EngineInfo, Engines } from "./engines.js";

let engines: Engines;

before(() => {
  engines = new Engines();
});
after(async () => {
  await engines.close();
});

const poolFor = (nodes: EngineInfo[], extra: Record<string, unknown> = {}): VelocityPool =>
  new VelocityPool({
    node: nodes.map((n) => n.endpoint),
    auth: nodes[0]!.token,
    ca: nodes[0]!.ca,
    timeoutMs: 10_000,
    ...extra,
  });

const norm = (e: string): string => formatEndpoint(parseEndpoint(e));

test("a replica REDIRECTs writes and linearizable reads to the primary; stale reads stay", async () => {
  const p = await engines.start("p1");
  const r = await engines.start("r1", { replicaOf: "p1" });
  await engines.caughtUp("p1", "r1");
  const vdb = poolFor([r]);
  try {
    assert.equal(await vdb.set("redirect:k", { via: "replica" }), true);
    assert.equal(formatEndpoint(vdb.endpoint), norm(p.endpoint), "the pool follows REDIRECT to the primary");
    assert.deepEqual(await vdb.get("redirect:k"), { via: "replica" });
    assert.equal(await vdb.incr("redirect:n", 2), 2);
  } finally {
    await vdb.close();
  }
  await engines.caughtUp("p1", "r1");
  const stale = poolFor([r], { poolSize: 1 });
  try {
    assert.deepEqual(await stale.get("redirect:k", { staleOk: true }), { via: "replica" });
    assert.deepEqual(await stale.mget(["redirect:k", "redirect:n"], { staleOk: true }), [{ via: "replica" }, 2]);
    assert.equal(formatEndpoint(stale.endpoint), norm(r.endpoint), "a stale read is served by the replica");
    assert.deepEqual(await stale.get("redirect:k"), { via: "replica" });
    assert.equal(formatEndpoint(stale.endpoint), norm(p.endpoint), "a linearizable read is redirected");
  } finally {
    await stale.close();
  }
});

test("planned switchover under load: no write fails, every acknowledged write reads back", async (t) => {
  const p = await engines.start("p2");
  const r = await engines.start("r2", { replicaOf: "p2" });
  await engines.caughtUp("p2", "r2");
  const vdb = poolFor([p, r]);
  await vdb.connect();
  const acked = new Map<string, number>();
  let incrAcked = 0;
  const failures: unknown[] = [];
  let stop = false;
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      try {
        await vdb.set(`sw:${w}:${i}`, i);
        acked.set(`sw:${w}:${i}`, i);
        await vdb.incr("sw:counter");
        incrAcked++;
      } catch (e) {
        failures.push(e);
        return;
      }
    }
  };
  const writers = Array.from({ length: 4 }, (_, w) => writer(w));
  while (acked.size < 200) await new Promise((res) => setTimeout(res, 5));
  const out = await engines.send({ op: "ctl", name: "p2", args: ["switchover", r.endpoint] });
  assert.equal(out["rc"], 0, `velocityctl switchover: ${String(out["stderr"])}`);
  const mark = acked.size;
  while (acked.size < mark + 200 && failures.length === 0) await new Promise((res) => setTimeout(res, 5));
  stop = true;
  await Promise.all(writers);
  t.diagnostic(`switchover: ${String(out["stdout"]).trim()}; ${acked.size} sets and ${incrAcked} incrs acknowledged`);
  assert.deepEqual(failures.map(String), [], "writes failed during a planned switchover");
  assert.equal(formatEndpoint(vdb.endpoint), norm(r.endpoint), "the pool follows the new primary");
  const keys = [...acked.keys()];
  const got = await vdb.mget(keys);
  keys.forEach((k, i) => assert.equal(got[i], acked.get(k), k));
  assert.equal(await vdb.get("sw:counter"), incrAcked);
  await vdb.close();
});

test("primary killed: in-flight writes are UnknownOutcomeError; after a promotion the pool writes to the new primary", async () => {
  const p = await engines.start("p3", { args: ["--appendfsync", "always"] });
  const r = await engines.start("r3", { replicaOf: "p3" });
  await engines.caughtUp("p3", "r3");
  const vdb = poolFor([p, r], { timeoutMs: 8000 });
  await vdb.connect();
  let stop = false;
  let unknown = 0;
  const other: unknown[] = [];
  const loop = async (): Promise<void> => {
    while (!stop) {
      try {
        await vdb.incr("kill:n");
      } catch (e) {
        if (e instanceof UnknownOutcomeError) unknown++;
        else other.push(e);
        return;
      }
    }
  };
  const loops = Array.from({ length: 8 }, () => loop());
  await engines.caughtUp("p3", "r3"); // the load runs meanwhile
  await engines.kill("p3");
  stop = true;
  await Promise.all(loops);
  assert.ok(unknown >= 1, "writes were in flight when the primary died");
  const promoted = await engines.send({ op: "ctl", name: "r3", args: ["promote"] });
  assert.equal(promoted["rc"], 0, String(promoted["stderr"]));
  assert.equal(await vdb.set("kill:after", "ok"), true);
  assert.equal(formatEndpoint(vdb.endpoint), norm(r.endpoint));
  assert.equal(await vdb.get("kill:after"), "ok");
  await vdb.close();
});
