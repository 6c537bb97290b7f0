/**
 * Real engine processes for the integration tests, through the Python
 * supervisor test/engines.py (which reuses tests/support and the replication
 * test cluster). Closing the supervisor's stdin kills every engine it started.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { resolve } from "node:path";
import { NODE_DIR, PYTHON, REPO } from "./helpers.js";

/** What a started engine looks like to a client. */
export interface EngineInfo {
  endpoint: string;
  port: number;
  metrics_port: number;
  ca?: string;
  token?: string;
  token_file?: string;
}

export class Engines {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: ((line: string) => void)[] = [];
  private readonly exited: Promise<void>;

  constructor() {
    this.proc = spawn(PYTHON, [resolve(NODE_DIR, "test", "engines.py")], { cwd: REPO, stdio: "pipe" });
    this.proc.stderr.on("data", (d: Buffer) => process.stderr.write(d));
    createInterface({ input: this.proc.stdout }).on("line", (line) => this.waiting.shift()?.(line));
    this.exited = new Promise((r) => this.proc.on("exit", () => r()));
  }

  async send(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const line = await new Promise<string>((r) => {
      this.waiting.push(r);
      this.proc.stdin.write(JSON.stringify(cmd) + "\n");
    });
    const reply = JSON.parse(line) as Record<string, unknown>;
    if (reply["error"]) throw new Error(`engines.py ${String(cmd["op"])}: ${String(reply["error"])}\n${String(reply["trace"])}`);
    return reply;
  }

  start(name: string, opts: { insecure?: boolean; replicaOf?: string; args?: string[] } = {}): Promise<EngineInfo> {
    return this.send({
      op: "start",
      name,
      insecure: opts.insecure ?? false,
      replica_of: opts.replicaOf,
      args: opts.args ?? [],
    }) as unknown as Promise<EngineInfo>;
  }

  async kill(name: string): Promise<void> {
    await this.send({ op: "kill", name });
  }

  restart(name: string): Promise<EngineInfo> {
    return this.send({ op: "restart", name }) as unknown as Promise<EngineInfo>;
  }

  async caughtUp(primary: string, ...replicas: string[]): Promise<void> {
    await this.send({ op: "caught_up", primary, replicas });
  }

  /** Stop the supervisor; it kills every engine. */
  async close(): Promise<void> {
    this.proc.stdin.end();
    await this.exited;
  }
}
