/**
 * The product page's snippet, typed: `tsc -p tsconfig.examples.json` checks it
 * against the published types (the package imports itself by name).
 *
 *     VDB_NODE=vdb://127.0.0.1:2005 VDB_TOKEN=... VDB_CA=ca.crt node dist-examples/quickstart.js
 */
import { AuthFailedError, UnknownOutcomeError, VelocityPool, type Value } from "@velocity/core";

async function main(): Promise<void> {
  const vdb = new VelocityPool({
    node: process.env["VDB_NODE"] ?? "alpha-cluster.vdb.io",
    auth: process.env["VDB_TOKEN"],
  });
  try {
    await vdb.connect();
  } catch (e) {
    if (e instanceof AuthFailedError) console.error("wrong token (code", e.code, ")");
    throw e;
  }

  await vdb.set("session:0xF1", { active: true }, { ttl: "2h" }); // linearizable SET with TTL
  const data: Value | undefined = await vdb.get("session:0xF1"); // { active: true }
  const total: number | bigint = await vdb.incr("counters:req_total", 1); // atomic, server-side
  console.log(data, total);

  await vdb.mset({ "user:1": "ada", "user:2": "grace" }); // atomic
  for await (const key of vdb.scan("user:")) console.log(key); // key order

  try {
    await vdb.incr("counters:req_total");
  } catch (e) {
    // The connection died after the request was sent: it may or may not have counted.
    if (e instanceof UnknownOutcomeError) console.error("outcome unknown; not retried");
    else throw e;
  }
  await vdb.close();
}

await main();
