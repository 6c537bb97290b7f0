#!/usr/bin/env node
// @velocity/core against Velocity, and ioredis against redis-server, on this machine.
//
//     cd bench/node && npm ci && cd ../.. && taskset -c 1 node bench/node/bench.mjs [--seconds 3] [--out docs/benchmarks-node.md]
//
// Servers are started here on free loopback ports, pinned to CPU 0 (taskset),
// durable with an everysec log (Velocity's default; Redis appendonly everysec);
// run the client pinned to CPU 1. 16 connections; 64-byte values over 10 000
// keys; unpipelined (16 requests in flight, one per connection) and pipelined
// (16 per connection, 256 in flight). Each cell runs for --seconds after a
// warm-up; latency is per request, from call to reply.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, cpus, loadavg } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "..", "..");
const { VelocityPool } = await import(resolve(REPO, "clients/node/dist/index.js"));
const ENGINE = resolve(REPO, ".venv/bin/velocity-engine");

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const SECONDS = Number(arg("seconds", "3"));
const OUT = arg("out", resolve(REPO, "docs/benchmarks-node.md"));
const CONNS = 16;
const KEYS = 10_000;
const VALUE = "x".repeat(64);

const procs = [];
const tmp = mkdtempSync(join(tmpdir(), "velocity-bench-node-"));
process.on("exit", () => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function until(what, fn, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function start(cmd, args, log) {
  const p = spawn("taskset", ["-c", "0", cmd, ...args], { stdio: ["ignore", "ignore", "ignore"] });
  procs.push(p);
  p.on("exit", (code) => {
    if (code !== null && code !== 0) console.error(`${log} exited with ${code}`);
  });
  return p;
}

async function startVelocity(name, insecure) {
  const port = await freePort();
  const metrics = await freePort();
  const dir = join(tmp, name);
  const args = ["--data-dir", dir, "--port", String(port), "--metrics-port", String(metrics)];
  const p = start(ENGINE, insecure ? [...args, "--insecure"] : args, name);
  await until(`${name} /readyz`, async () => (await fetch(`http://127.0.0.1:${metrics}/readyz`)).status === 200);
  return {
    proc: p,
    endpoint: `vdb://127.0.0.1:${port}`,
    token: insecure ? undefined : readFileSync(join(dir, "auth-token"), "utf8").trim(),
    ca: insecure ? undefined : join(dir, "tls", "ca.crt"),
  };
}

async function startRedis() {
  const port = await freePort();
  const p = start("redis-server", [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
    "--appendfsync", "everysec", "--dir", tmp, "--protected-mode", "no", "--logfile", join(tmp, "redis.log"),
  ], "redis");
  await until("redis", async () => {
    const r = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } finally {
      r.disconnect();
    }
  });
  return { proc: p, port };
}

// One cell: CONNS workers, each issuing `depth` requests at a time until the clock runs out.
async function cell(issue, depth, seconds) {
  const lat = [];
  let ops = 0;
  let stop = false;
  const worker = async (w) => {
    let i = w * 7919;
    while (!stop) {
      const batch = [];
      for (let j = 0; j < depth; j++) {
        const key = `key:${(i++ * 2654435761) % KEYS}`;
        const t0 = performance.now();
        batch.push(issue(w, key).then(() => lat.push(performance.now() - t0)));
      }
      await Promise.all(batch);
      ops += depth;
    }
  };
  const t = Array.from({ length: CONNS }, (_, w) => worker(w));
  await new Promise((r) => setTimeout(r, 500));
  lat.length = 0;
  ops = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  stop = true;
  const elapsed = (performance.now() - t0) / 1000;
  const counted = ops;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(t);
  lat.sort((a, b) => a - b);
  const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? NaN;
  return { opsPerSec: counted / elapsed, p50: p(0.5), p99: p(0.99), cpuUs: (cpu.user + cpu.system) / counted };
}

async function main() {
  const results = [];
  const vplain = await startVelocity("velocity-plain", true);
  const vtls = await startVelocity("velocity-tls", false);
  const redis = await startRedis();

  const vpool = (v) =>
    new VelocityPool({ node: v.endpoint, auth: v.token, ca: v.ca, insecure: !v.token, poolSize: CONNS }).connect();
  const pools = { "Velocity, TLS 1.3": await vpool(vtls), "Velocity, plaintext": await vpool(vplain) };
  const clients = Array.from({ length: CONNS }, () => new Redis({ port: redis.port, enableAutoPipelining: true }));
  await Promise.all(clients.map((c) => c.ping()));

  // Fill the keys so GETs find values.
  for (const pool of Object.values(pools)) {
    for (let i = 0; i < KEYS; i += 500) {
      await pool.mset(Array.from({ length: 500 }, (_, j) => [`key:${i + j}`, VALUE]));
    }
  }
  for (let i = 0; i < KEYS; i += 500) {
    await clients[0].mset(...Array.from({ length: 500 }, (_, j) => [`key:${i + j}`, VALUE]).flat());
  }

  const systems = [
    ...Object.entries(pools).map(([name, pool]) => ({
      name: `@velocity/core → ${name}`,
      set: (_w, k) => pool.set(k, VALUE),
      get: (_w, k) => pool.get(k),
    })),
    {
      name: "ioredis → Redis 7, plaintext",
      set: (w, k) => clients[w].set(k, VALUE),
      get: (w, k) => clients[w].get(k),
    },
  ];
  for (const depth of [1, 16]) {
    for (const op of ["set", "get"]) {
      for (const s of systems) {
        const r = await cell(s[op], depth, SECONDS);
        const row = { system: s.name, op: op.toUpperCase(), depth, ...r };
        results.push(row);
        console.log(
          `${row.system.padEnd(40)} ${row.op} P=${String(depth).padEnd(3)} ${Math.round(r.opsPerSec).toLocaleString("en").padStart(9)} ops/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  client ${r.cpuUs.toFixed(1)} us/op`,
        );
      }
    }
  }
  for (const pool of Object.values(pools)) await pool.close();
  for (const c of clients) c.disconnect();
  return results;
}

const loadBefore = loadavg()[0];
const results = await main();
const loadAfter = loadavg()[0];
const date = new Date().toISOString().slice(0, 10);
const rows = results
  .map((r) => `| ${r.system} | ${r.op} | ${r.depth} | ${Math.round(r.opsPerSec).toLocaleString("en")} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.cpuUs.toFixed(1)} |`)
  .join("\n");
const ratio = (op, depth, name) => {
  const a = results.find((r) => r.op === op && r.depth === depth && r.system.includes(name));
  const b = results.find((r) => r.op === op && r.depth === depth && r.system.startsWith("ioredis"));
  return (a.opsPerSec / b.opsPerSec).toFixed(2);
};
const cpuRatio = (op, depth, name) => {
  const a = results.find((r) => r.op === op && r.depth === depth && r.system.includes(name));
  const b = results.find((r) => r.op === op && r.depth === depth && r.system.startsWith("ioredis"));
  return (a.cpuUs / b.cpuUs).toFixed(2);
};
const cpuSpan = (name) => {
  const rs = [1, 16].flatMap((d) => ["SET", "GET"].map((op) => Number(cpuRatio(op, d, name))));
  return `${Math.min(...rs).toFixed(2)}x to ${Math.max(...rs).toFixed(2)}x`;
};
const ratios = [1, 16]
  .flatMap((d) =>
    ["SET", "GET"].map(
      (op) =>
        `| ${op} P=${d} | ${ratio(op, d, "TLS")}x | ${ratio(op, d, "plaintext")}x | ${cpuRatio(op, d, "TLS")}x | ${cpuRatio(op, d, "plaintext")}x |`,
    ),
  )
  .join("\n");
const md = `## Node.js SDK: @velocity/core vs ioredis (${date})

\`bench/node/bench.mjs\` (\`make bench-node\`), ${cpus().length} cores shared with other work: the 1-minute load average was
${loadBefore.toFixed(1)} at the start and ${loadAfter.toFixed(1)} at the end, so absolute numbers are far below what these servers do on
an idle machine and vary between runs; compare within one run, and prefer the client CPU column for the SDKs themselves.
Each server is pinned to CPU 0, the Node.js ${process.version} client pinned to CPU 1, one client process.
${CONNS} connections, 64-byte values over ${KEYS.toLocaleString("en")} keys, ${SECONDS} s per cell after a warm-up.
P=1: ${CONNS} requests in flight (one per connection); P=16: each of ${CONNS} workers sends 16 at once (256 in flight).
ioredis runs with enableAutoPipelining (commands of one tick in one write, as @velocity/core does).
Velocity (the Python engine) runs its defaults (durable, WAL fsync everysec); Redis 7 with appendonly everysec.
Latency is per request, call to reply, in ms. Client CPU is the Node.js process's user + system
time per request (the SDK's own cost, less sensitive to the machine's load than ops/s).

| client → server | op | P | ops/s | p50 ms | p99 ms | client CPU µs/op |
|---|---|---:|---:|---:|---:|---:|
${rows}

Relative to ioredis → Redis (throughput: higher is better; client CPU per request: lower is better):

| cell | ops/s, TLS | ops/s, plaintext | client CPU, TLS | client CPU, plaintext |
|---|---:|---:|---:|---:|
${ratios}

Throughput and latency here are mostly the servers' (the Python engine pays several times Redis's
CPU per SET, docs/benchmarks.md); the SDK's own cost is the client CPU column: per request,
@velocity/core (V-Proto: FlatBuffers, CRC-32, and TLS 1.3 in the TLS column) used ${cpuSpan("plaintext")} of
ioredis's CPU (RESP, plaintext) over plaintext, and ${cpuSpan("TLS")} with TLS.
`;
writeFileSync(OUT, md);
console.log(`wrote ${OUT}`);
process.exit(0);
