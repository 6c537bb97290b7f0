/**
 * Cross-language: values written by this SDK read back with the same types in
 * the Python SDK, and the other way round (the shared value vectors).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { VelocityPool, type Value } from "../src/index.js";
import { type EngineInfo, Engines } from "./engines.js";
import { PYTHON, REPO, caseValue, valueCases } from "./helpers.js";

const run = promisify(execFile);
let engines: Engines;
let eng: EngineInfo;
const cases = valueCases();

// Reads node:* keys with the Python SDK and writes py:* keys, each value from the vectors.
const SNIPPET = `
import asyncio, json, sys
sys.path[:0] = ["proto/python", "clients/python"]
from velocity import VelocityPool
from vproto.values import encode_value

def value(c):
    if c["type"] == "bytes": return bytes.fromhex(c["value"])
    if c["type"] == "int": return int(c["value"])
    return c["value"]

async def main():
    endpoint, token, ca = sys.argv[1:4]
    cases = json.load(open("proto/vectors/values.json"))["cases"]
    out = []
    async with VelocityPool(endpoint, auth=token, ca=ca) as vdb:
        for c in cases:
            got = await vdb.get("node:" + c["name"], default=KeyError)
            want = value(c)
            kind, payload = encode_value(got) if got is not KeyError else (-1, b"")
            out.append({"name": c["name"], "same": got == want and type(got) is type(want),
                        "pytype": type(got).__name__, "kind": int(kind), "payload_hex": payload.hex()})
            await vdb.set("py:" + c["name"], want)
    print(json.dumps(out))

asyncio.run(main())
`;

before(async () => {
  engines = new Engines();
  eng = await engines.start("x");
});
after(async () => {
  await engines.close();
});

test("Node writes, Python reads the same values with the same types; Python writes, Node reads", async () => {
  const vdb = await new VelocityPool({ node: eng.endpoint, auth: eng.token, ca: eng.ca, poolSize: 2 }).connect();
  try {
    await Promise.all(cases.map((c) => vdb.set(`node:${c.name}`, caseValue(c) as Value)));
    const { stdout } = await run(PYTHON, ["-c", SNIPPET, eng.endpoint, eng.token!, eng.ca!], { cwd: REPO });
    const seen = JSON.parse(stdout) as { name: string; same: boolean; pytype: string; kind: number; payload_hex: string }[];
    assert.equal(seen.length, cases.length);
    for (const [i, c] of cases.entries()) {
      const s = seen[i]!;
      assert.ok(s.same, `${c.name}: Python read a ${s.pytype} that differs from the vector`);
      assert.equal(s.kind, c.kind, c.name);
      assert.equal(s.payload_hex, c.payload_hex, c.name);
    }
    const back = await vdb.mget(cases.map((c) => `py:${c.name}`));
    for (const [i, c] of cases.entries()) {
      assert.deepEqual(back[i], caseValue(c), c.name);
      assert.equal(typeof back[i], typeof caseValue(c), c.name);
    }
  } finally {
    await vdb.close();
  }
});
