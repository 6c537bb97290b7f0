/**
 * `npm pack` produces a tarball that installs offline into an empty project,
 * with no dependencies, and runs the README snippet against a real engine:
 * as an ES module and through `require` (CommonJS), with type declarations
 * for both that `tsc` resolves from the installed package.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { type EngineInfo, Engines } from "./engines.js";
import { NODE_DIR } from "./helpers.js";

const run = promisify(execFile);
let engines: Engines;
let eng: EngineInfo;
const tmp = mkdtempSync(join(tmpdir(), "velocity-pack-"));

before(async () => {
  engines = new Engines();
  eng = await engines.start("pack");
});
after(async () => {
  await engines.close();
  rmSync(tmp, { recursive: true, force: true });
});

function readmeSnippet(): string {
  const readme = readFileSync(resolve(NODE_DIR, "README.md"), "utf8");
  const m = /<!-- snippet[^>]*-->\s*```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, "README.md has no marked snippet");
  return m[1] as string;
}

test("npm pack, offline install into an empty project, README snippet runs", async () => {
  const { stdout } = await run("npm", ["pack", "--silent", "--pack-destination", tmp], { cwd: NODE_DIR });
  const tarball = join(tmp, stdout.trim().split("\n").pop() as string);
  const app = join(tmp, "app");
  await run("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], { cwd: app });
  const installed = join(app, "node_modules", "@velocity", "core");
  const pkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as Record<string, unknown>;
  assert.equal(pkg["dependencies"], undefined, "no runtime dependencies");
  assert.deepEqual(readdirSync(join(app, "node_modules")).filter((n) => !n.startsWith(".")), ["@velocity"], "nothing else was installed");
  assert.ok(readdirSync(join(installed, "dist")).includes("index.d.ts"), "type declarations ship");
  assert.ok(readdirSync(join(installed, "dist", "cjs")).includes("index.d.ts"), "CommonJS type declarations ship");

  const snippet = readmeSnippet().replace("'alpha-cluster.vdb.io'", JSON.stringify(eng.endpoint));
  assert.notEqual(snippet, readmeSnippet(), "the snippet names its node as the README does");
  writeFileSync(join(app, "index.mjs"), `${snippet}\nconsole.log(JSON.stringify(data));\nawait vdb.close();\n`);
  const env = { ...process.env, VDB_TOKEN: eng.token, VDB_CA: eng.ca };
  const out = await run("node", ["index.mjs"], { cwd: app, env, timeout: 20_000 });
  assert.equal(out.stdout.trim(), JSON.stringify({ active: true }));

  // CommonJS: the same snippet through require(), in an async function (no top-level await).
  const body = snippet.replace(/^import \{ VelocityPool \} from '@velocity\/core';$/m, "");
  assert.notEqual(body, snippet, "the snippet starts with the ESM import");
  writeFileSync(
    join(app, "index.cjs"),
    `const { VelocityPool, VelocityError } = require('@velocity/core');\n(async () => {\n${body}\n` +
      `console.log(JSON.stringify(data), require.resolve('@velocity/core').includes('cjs'));\n` +
      `await vdb.close();\n})().catch((e) => { console.error(e instanceof VelocityError, e); process.exit(1); });\n`,
  );
  const cjs = await run("node", ["index.cjs"], { cwd: app, env, timeout: 20_000 });
  assert.equal(cjs.stdout.trim(), `${JSON.stringify({ active: true })} true`);

  // Types resolve from the installed package for both module systems (strict tsc, no emit).
  writeFileSync(
    join(app, "check.mts"),
    "import { VelocityPool, UnknownOutcomeError, type Value } from '@velocity/core';\n" +
      "const v: Value = 1; const p = new VelocityPool({ node: 'h' }); const e: typeof UnknownOutcomeError = UnknownOutcomeError;\n" +
      "export const use = [v, p, e];\n",
  );
  writeFileSync(
    join(app, "check.cts"),
    "import core = require('@velocity/core');\n" +
      "const p: core.VelocityPool = new core.VelocityPool({ poolSize: 2 }); const n: Promise<number | bigint> = p.incr('k');\n" +
      "export = [p, n];\n",
  );
  const tsc = resolve(NODE_DIR, "node_modules", "typescript", "bin", "tsc");
  const typeRoots = resolve(NODE_DIR, "node_modules", "@types");
  await run(
    process.execPath,
    [tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
      "--typeRoots", typeRoots, "--types", "node", "check.mts", "check.cts"],
    { cwd: app },
  ).catch((e: { stdout?: string }) => assert.fail(`tsc on the installed package: ${e.stdout ?? String(e)}`));
});
