/**
 * Against a primary and replicas (tests/integration/replication/cluster.py via
 * test/engines.py): REDIRECT from a replica, stale reads, a planned switchover
 * under load with every acknowledged write read back, and a primary killed
 * under load, then a replica promoted, with every acknowledged write read back.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ConnectionError, RedirectError, VelocityError, VelocityPool, formatEndpoint, parseEndpoint } from "../src/index.js";
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
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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

test("primary killed under load (sync replication): unknown outcomes reported, the promoted replica has every acknowledged write", async (t) => {
  const sync = ["--replication-mode", "sync", "--sync-replicas", "1"];
  const p = await engines.start("p3", { args: sync });
  const r1 = await engines.start("r3a", { replicaOf: "p3", args: sync });
  const r2 = await engines.start("r3b", { replicaOf: "p3", args: sync });
  await engines.caughtUp("p3", "r3a", "r3b");
  const repl = async (name: string): Promise<Record<string, unknown>> => {
    const out = await engines.send({ op: "ctl", name, args: ["info", "--json"] });
    assert.equal(out["rc"], 0, String(out["stderr"]));
    return (JSON.parse(String(out["stdout"])) as { replication: Record<string, unknown> }).replication;
  };
  for (;;) {
    if ((await repl("p3"))["replicas_connected"] === 2) break;
    await sleep(20); // polling a remote state
  }
  // Every node as a seed: once the primary is gone the pool tries the others.
  const vdb = poolFor([p, r1, r2], { timeoutMs: 5000 });
  await vdb.connect();
  const acked = new Map<string, number>();
  const unknown: string[] = [];
  let incrAcked = 0;
  let incrUnknown = 0;
  let refused = 0;
  const unexpected: unknown[] = [];
  let stop = false;
  // Sorts a failed write the way the error classes tell: may have happened, or certainly not executed.
  const failed = (e: unknown): "unknown" | "refused" => {
    if (e instanceof VelocityError && e.mayHaveHappened) return "unknown";
    if (e instanceof ConnectionError || e instanceof RedirectError) return "refused";
    unexpected.push(e);
    return "refused";
  };
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const key = `kill:${w}:${i}`;
      let ok = true;
      try {
        await vdb.set(key, i);
        acked.set(key, i);
      } catch (e) {
        ok = false;
        if (failed(e) === "unknown") unknown.push(key);
        else refused++;
      }
      try {
        await vdb.incr("kill:counter");
        incrAcked++;
      } catch (e) {
        ok = false;
        if (failed(e) === "unknown") incrUnknown++;
        else refused++;
      }
      if (!ok) await sleep(10); // no primary yet: don't spin
    }
  };
  const writers = Array.from({ length: 8 }, (_, w) => writer(w));
  const stopWriters = async (): Promise<void> => {
    stop = true;
    await Promise.all(writers);
  };
  const until = async (n: number, what: string): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (acked.size < n) {
      assert.ok(Date.now() < deadline, `${what}: ${acked.size} writes acknowledged`);
      await sleep(10); // polling the writers' progress
    }
  };
  let promoted: Record<string, unknown>;
  let bestInfo: EngineInfo;
  try {
    await until(300, "before the kill");
    await engines.kill("p3"); // SIGKILL
    const killedAt = acked.size;
    // The replicas notice; the one with the most records is promoted, the other follows it.
    let seqs: [number, number];
    const noticeBy = Date.now() + 20_000;
    for (;;) {
      const [a, b] = [await repl("r3a"), await repl("r3b")];
      const down = (x: Record<string, unknown>): boolean => (x["link"] as Record<string, unknown>)["link_up"] === false;
      if (down(a) && down(b)) {
        seqs = [a["seq"] as number, b["seq"] as number];
        break;
      }
      if (Date.now() > noticeBy) {
        assert.fail(`the replicas never noticed the primary died: ${JSON.stringify([a, b])}`);
      }
      await sleep(20); // polling a remote state
    }
    const [best, otherName] = seqs[0] >= seqs[1] ? ["r3a", "r3b"] : ["r3b", "r3a"];
    bestInfo = best === "r3a" ? r1 : r2;
    promoted = await engines.send({ op: "ctl", name: best, args: ["promote"] });
    assert.equal(promoted["rc"], 0, String(promoted["stderr"]));
    const follow = await engines.send({ op: "ctl", name: otherName, args: ["replicaof", bestInfo.endpoint] });
    assert.equal(follow["rc"], 0, String(follow["stderr"]));
    await until(killedAt + 200, "after the promotion");
  } finally {
    await stopWriters(); // also when an assertion failed: the writers must not outlive the test
  }
  t.diagnostic(
    `${acked.size} sets and ${incrAcked} incrs acknowledged, ${unknown.length} + ${incrUnknown} of unknown outcome, ` +
      `${refused} refused unexecuted; ${String(promoted["stdout"]).trim()}`,
  );
  assert.deepEqual(unexpected.map(String), [], "writes failed in ways the error classes do not explain");
  assert.ok(unknown.length + incrUnknown >= 1, "writes were in flight when the primary died");
  assert.equal(formatEndpoint(vdb.endpoint), norm(bestInfo.endpoint), "the pool found the promoted replica");
  const keys = [...acked.keys()];
  for (let i = 0; i < keys.length; i += 500) {
    const chunk = keys.slice(i, i + 500);
    const got = await vdb.mget(chunk);
    chunk.forEach((k, j) => assert.equal(got[j], acked.get(k), `acknowledged write ${k} lost`));
  }
  const counter = (await vdb.get("kill:counter")) as number;
  assert.ok(counter >= incrAcked && counter <= incrAcked + incrUnknown, `counter ${counter}, acked ${incrAcked}, unknown ${incrUnknown}`);
  await vdb.close();
});
