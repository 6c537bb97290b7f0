/**
 * VelocityPool: the SDK's entry point (the same operations and semantics as
 * the Python SDK's velocity.VelocityPool).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { Connection, type ConnectOptions } from "./connection.js";
import { type Endpoint, formatEndpoint, parseEndpoint, sameEndpoint } from "./endpoint.js";
import {
  BusyError,
  ConnectionError,
  PoolClosedError,
  ProtocolError,
  RedirectError,
  ShuttingDownError,
  TlsError,
  VelocityError,
} from "./errors.js";
import { type Fields, type TableDef, decodeTable } from "./flatbuf.js";
import { Consistency, encodeTableFrame } from "./frame.js";
import * as msg from "./messages.js";
import { parseTtlMs, type Ttl } from "./durations.js";
import { type Value, decodeValue, encodeValue, narrow } from "./values.js";

/** A key: a string (UTF-8) or raw bytes. */
export type Key = string | Uint8Array;

/** Options of {@link VelocityPool}. Every field is optional. */
export interface PoolOptions {
  /**
   * Where to connect: `host`, `host:port` or `vdb://host[:port]` (port 2005 by
   * default), or a list of such seeds tried in turn when one is unreachable.
   * Default: `VDB_NODE`, else `vdb://127.0.0.1:2005`.
   */
  node?: string | readonly string[];
  /** Auth token. Default: `VDB_TOKEN`. */
  auth?: string;
  /** Trusted CA: PEM text or a path to a PEM file. Default: `VDB_CA`, else the system roots. */
  ca?: string;
  /** Connections to open and spread requests over. Default 4. */
  poolSize?: number;
  /** Deadline of connect + handshake and of each request, in ms. Default 10 000. */
  timeoutMs?: number;
  /** Plaintext, for a server started with `--insecure`. Default false (TLS 1.3). */
  insecure?: boolean;
  /** TLS server name to verify instead of the host (e.g. when connecting by IP). */
  servername?: string;
  /** Sent in HELLO, shown in the server's logs. Default "velocity-node". */
  clientName?: string;
}

/** Options of {@link VelocityPool.set}. */
export interface SetOptions {
  /** Expiry: seconds, or "2h", "30s", "1500ms", "1h30m". */
  ttl?: Ttl;
  /** Only if the key does not exist. */
  nx?: boolean;
  /** Only if the key exists. */
  xx?: boolean;
}

/** Options of reads that a replica may serve. */
export interface ReadOptions {
  /** Let a replica answer (possibly behind the primary). Default false (linearizable). */
  staleOk?: boolean;
}

/** Options of {@link VelocityPool.scan}. */
export interface ScanOptions extends ReadOptions {
  /** Page size asked of the server. Default 100. */
  count?: number;
}

const MAX_REDIRECTS = 3;
const REDIRECT_LOOP_PAUSE_MS = 50;
const MAX_NOT_SENT_RETRIES = 3;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const utf8 = new TextDecoder("utf-8");

function keyBytes(key: Key): Uint8Array {
  if (typeof key === "string") return Buffer.from(key, "utf8");
  if (key instanceof Uint8Array) return key;
  throw new TypeError(`keys are strings or bytes, not ${typeof key}`);
}

function readCa(ca: string | undefined): string | undefined {
  if (ca === undefined || ca === "") return undefined;
  return ca.includes("-----BEGIN") ? ca : readFileSync(ca, "utf8");
}

/**
 * A pool of pipelined connections to one Velocity deployment.
 *
 * Requests are spread round-robin over `poolSize` connections; each connection
 * pipelines, so thousands of concurrent requests are fine. A dead connection
 * is reopened on next use, with exponential backoff (25 ms doubling to 1 s,
 * within the request's deadline), trying each seed in turn. A REDIRECT from a
 * replica is followed and the pool then stays on the primary; while a hand-over
 * is half done (two nodes naming each other, or a fenced primary naming none)
 * the request is retried, pausing, until its deadline.
 *
 * Reads are retried once on a fresh connection after a connection failure.
 * A write whose connection fails after it was sent rejects with
 * {@link UnknownOutcomeError} and is never retried (an INCR must not count twice).
 *
 * Not safe to share across worker threads; safe for any number of concurrent
 * async callers.
 */
export class VelocityPool {
  /** The endpoint requests currently go to (moves to the primary on REDIRECT). */
  endpoint: Endpoint;
  private readonly seeds: Endpoint[];
  private readonly opts: ConnectOptions;
  /** Number of connections. */
  readonly poolSize: number;
  private readonly conns: (Connection | undefined)[];
  private readonly opening: (Promise<Connection> | undefined)[];
  private next = 0;
  private closed = false;

  constructor(options: PoolOptions = {}) {
    const nodes = options.node ?? process.env["VDB_NODE"] ?? "vdb://127.0.0.1:2005";
    const list = typeof nodes === "string" ? nodes.split(",") : [...nodes];
    this.seeds = list.map((n) => parseEndpoint(n));
    if (this.seeds.length === 0) throw new TypeError("node: at least one endpoint is needed");
    this.endpoint = this.seeds[0] as Endpoint;
    this.poolSize = options.poolSize ?? 4;
    if (!Number.isInteger(this.poolSize) || this.poolSize < 1) throw new RangeError("poolSize must be an integer >= 1");
    const insecure = options.insecure ?? false;
    this.opts = {
      insecure,
      ca: insecure ? undefined : readCa(options.ca ?? process.env["VDB_CA"]),
      servername: options.servername,
      token: options.auth ?? process.env["VDB_TOKEN"] ?? "",
      clientName: options.clientName ?? "velocity-node",
      timeoutMs: options.timeoutMs ?? 10_000,
    };
    this.conns = new Array<Connection | undefined>(this.poolSize).fill(undefined);
    this.opening = new Array<Promise<Connection> | undefined>(this.poolSize).fill(undefined);
  }

  // ---- lifecycle ---------------------------------------------------------------

  /** Open every connection now, so that errors (auth, TLS) surface here. Returns the pool. */
  async connect(): Promise<this> {
    const deadline = Date.now() + this.opts.timeoutMs;
    await Promise.all(this.conns.map((_c, i) => this.conn(i, deadline)));
    return this;
  }

  /** Close every connection; requests in flight are rejected. The pool cannot be reused. */
  async close(): Promise<void> {
    this.closed = true;
    const open = this.conns.filter((c): c is Connection => c !== undefined);
    this.conns.fill(undefined);
    for (const c of open) c.close();
    await Promise.all(open.map((c) => c.closed()));
  }

  private async conn(i: number, deadline: number): Promise<Connection> {
    for (;;) {
      if (this.closed) throw new PoolClosedError();
      const c = this.conns[i];
      if (c !== undefined && c.isOpen && sameEndpoint(c.endpoint, this.endpoint)) return c;
      if (c !== undefined) {
        this.conns[i] = undefined;
        this.retire(c);
      }
      let pending = this.opening[i];
      if (pending === undefined) {
        pending = this.openWithBackoff(deadline);
        this.opening[i] = pending;
        pending.then(
          () => (this.opening[i] = undefined),
          () => (this.opening[i] = undefined),
        );
        const opened = await pending;
        if (this.closed) {
          opened.close();
          throw new PoolClosedError();
        }
        this.conns[i] = opened;
      } else {
        await pending;
      }
    }
  }

  private async openWithBackoff(deadline: number): Promise<Connection> {
    for (let attempt = 0; ; attempt++) {
      const target = this.endpoint;
      try {
        return await Connection.open(target, this.opts);
      } catch (e) {
        const transient = (e instanceof ConnectionError && !(e instanceof TlsError)) || e instanceof BusyError || e instanceof ShuttingDownError;
        const delay = Math.min(1000, 25 * 2 ** attempt) * (0.5 + Math.random() / 2);
        if (!transient || this.closed || Date.now() + delay > deadline) throw e;
        if (this.seeds.length > 1 && sameEndpoint(target, this.endpoint)) {
          // Unreachable: try the next seed (a replica redirects to the primary).
          const k = this.seeds.findIndex((s) => sameEndpoint(s, target));
          this.endpoint = this.seeds[(k + 1) % this.seeds.length] as Endpoint;
        }
        await sleep(delay);
      }
    }
  }

  private retire(c: Connection): void {
    if (c.inFlight === 0) c.close();
    else setTimeout(() => c.close(), this.opts.timeoutMs).unref(); // replies still owed arrive first
  }

  private redirect(primary: string): void {
    const ep = parseEndpoint(primary);
    if (sameEndpoint(ep, this.endpoint)) return;
    this.endpoint = ep;
    if (!this.seeds.some((s) => sameEndpoint(s, ep))) this.seeds.push(ep);
    this.conns.forEach((c, i) => {
      if (c !== undefined) {
        this.conns[i] = undefined;
        this.retire(c);
      }
    });
  }

  /**
   * Send one request and return the reply body. Follows REDIRECT; retries
   * reads once after a connection failure, and any request that was not sent.
   */
  private async call(opcode: number, def: TableDef, values: Fields, write: boolean, consistency = 0): Promise<Buffer> {
    const frame = encodeTableFrame(opcode, consistency, def, values); // resent as is on a retry
    // Redirect loops and a fenced primary (no primary named yet) are retried until the deadline.
    const deadline = Date.now() + this.opts.timeoutMs;
    const giveUp = deadline;
    let redirects = 0;
    let failures = 0;
    for (;;) {
      const i = this.next;
      this.next = (i + 1) % this.poolSize;
      const c = await this.conn(i, deadline);
      try {
        return await c.request(opcode, frame, write);
      } catch (e) {
        if (e instanceof RedirectError) {
          if (e.primary && (redirects < MAX_REDIRECTS || Date.now() < giveUp)) {
            // Past MAX_REDIRECTS two nodes name each other: a hand-over is half done.
            if (redirects >= MAX_REDIRECTS) await sleep(REDIRECT_LOOP_PAUSE_MS);
            redirects++;
            this.redirect(e.primary);
            continue;
          }
          if (!e.primary && e.retryAfterMs > 0 && Date.now() < giveUp) {
            await sleep(e.retryAfterMs); // deposed, no primary known yet
            continue;
          }
          throw e;
        }
        // ConnectionError (not UnknownOutcomeError): a read lost in flight, or a request never sent.
        if (e instanceof ConnectionError && !(e instanceof TlsError) && failures < MAX_NOT_SENT_RETRIES && (write ? true : failures < 1)) {
          failures++;
          continue;
        }
        throw e;
      }
    }
  }

  private async callKey(opcode: number, key: Key, write: boolean, consistency = 0): Promise<Buffer> {
    return this.call(opcode, msg.KeyRequest, { key: keyBytes(key) }, write, consistency);
  }

  private static bool(body: Buffer): boolean {
    return decodeTable(msg.BoolResponse, body).value as boolean;
  }

  // ---- single key ----------------------------------------------------------------

  /** The value, decoded to the type it was stored as; `undefined` when the key does not exist. */
  async get(key: Key, options: ReadOptions = {}): Promise<Value | undefined> {
    const r = decodeTable(msg.GetResponse, await this.callKey(msg.Opcode.GET, key, false, consistency(options)));
    return r.found ? decodeValue(r.kind as number, r.value as Uint8Array) : undefined;
  }

  /**
   * Store a value (Buffer: bytes, string, integer: Int, anything else: JSON).
   * `nx`: only if absent; `xx`: only if present. Returns whether it was written.
   */
  async set(key: Key, value: Value, options: SetOptions = {}): Promise<boolean> {
    if (options.nx && options.xx) throw new TypeError("nx and xx exclude each other");
    const [kind, data] = encodeValue(value);
    const fields = {
      key: keyBytes(key),
      value: data,
      kind,
      ttl_ms: ttlMs(options.ttl),
      condition: options.nx ? 1 : options.xx ? 2 : 0,
    };
    return decodeTable(msg.SetResponse, await this.call(msg.Opcode.SET, msg.SetRequest, fields, true)).applied as boolean;
  }

  /** Delete a key; true if it existed. */
  async del(key: Key): Promise<boolean> {
    return VelocityPool.bool(await this.callKey(msg.Opcode.DEL, key, true));
  }

  /** Whether the key exists. */
  async exists(key: Key, options: ReadOptions = {}): Promise<boolean> {
    return VelocityPool.bool(await this.callKey(msg.Opcode.EXISTS, key, false, consistency(options)));
  }

  /**
   * Atomically add `by` (default 1, may be negative) and return the new value:
   * a number, or a bigint beyond 2^53.
   */
  async incr(key: Key, by: number | bigint = 1): Promise<number | bigint> {
    if (typeof by === "number" && !Number.isSafeInteger(by)) throw new TypeError("by must be an integer (or a bigint)");
    const fields = { key: keyBytes(key), delta: BigInt(by) };
    return narrow(decodeTable(msg.IncrResponse, await this.call(msg.Opcode.INCR, msg.IncrRequest, fields, true)).value as bigint);
  }

  /** Atomically subtract `by` (default 1) and return the new value. */
  async decr(key: Key, by: number | bigint = 1): Promise<number | bigint> {
    return this.incr(key, -by);
  }

  /** Set an expiry; false if the key does not exist. */
  async expire(key: Key, ttl: Ttl): Promise<boolean> {
    const fields = { key: keyBytes(key), ttl_ms: parseTtlMs(ttl) };
    return VelocityPool.bool(await this.call(msg.Opcode.EXPIRE, msg.ExpireRequest, fields, true));
  }

  /** Remove the expiry; true if there was one. */
  async persist(key: Key): Promise<boolean> {
    return VelocityPool.bool(await this.callKey(msg.Opcode.PERSIST, key, true));
  }

  /** Milliseconds left; -1 when the key has no expiry, -2 when it does not exist. */
  async pttl(key: Key): Promise<number> {
    return Number(decodeTable(msg.TtlResponse, await this.callKey(msg.Opcode.TTL, key, false)).ttl_ms as bigint);
  }

  /** Seconds left, or null when the key is missing or has no expiry. */
  async ttl(key: Key): Promise<number | null> {
    const ms = await this.pttl(key);
    return ms < 0 ? null : ms / 1000;
  }

  /**
   * Compare-and-set: write `value` only if the current value equals `expected`
   * (same kind and bytes), or, when `expected` is null or undefined, only if the
   * key does not exist. Returns whether it was written.
   */
  async cas(key: Key, expected: Value | undefined, value: Value, options: { ttl?: Ttl } = {}): Promise<boolean> {
    const absent = expected === undefined || expected === null;
    const [ekind, edata] = absent ? [0, Buffer.alloc(0)] : encodeValue(expected);
    const [kind, data] = encodeValue(value);
    const fields = {
      key: keyBytes(key),
      expected: edata,
      expected_kind: ekind,
      expect_absent: absent,
      value: data,
      kind,
      ttl_ms: ttlMs(options.ttl),
    };
    return decodeTable(msg.CasResponse, await this.call(msg.Opcode.CAS, msg.CasRequest, fields, true)).applied as boolean;
  }

  // ---- multi key ----------------------------------------------------------------------

  /** The values of `keys`, in order; `undefined` for missing keys. */
  async mget(keys: Iterable<Key>, options: ReadOptions = {}): Promise<(Value | undefined)[]> {
    const fields = { keys: [...keys].map((k) => ({ key: keyBytes(k) })) };
    const body = await this.call(msg.Opcode.MGET, msg.MGetRequest, fields, false, consistency(options));
    const r = decodeTable(msg.MGetResponse, body);
    return (r.entries as Record<string, unknown>[]).map((e) =>
      e.found ? decodeValue(e.kind as number, e.value as Uint8Array) : undefined,
    );
  }

  /** Write every pair atomically: all of them or, on error, none. */
  async mset(
    entries: Record<string, Value> | Map<Key, Value> | Iterable<readonly [Key, Value]>,
    options: { ttl?: Ttl } = {},
  ): Promise<void> {
    const ttl = ttlMs(options.ttl);
    const pairs: Iterable<readonly [Key, Value]> =
      entries instanceof Map || Symbol.iterator in entries
        ? (entries as Iterable<readonly [Key, Value]>)
        : Object.entries(entries as Record<string, Value>);
    const list = [];
    for (const [k, v] of pairs) {
      const [kind, data] = encodeValue(v);
      list.push({ key: keyBytes(k), kind, value: data, ttl_ms: ttl });
    }
    await this.call(msg.Opcode.MSET, msg.MSetRequest, { entries: list }, true);
  }

  /** Every key starting with `prefix`, in byte order, fetched `count` at a time. */
  async *scan(prefix: Key = "", options: ScanOptions = {}): AsyncGenerator<string, void, undefined> {
    const p = keyBytes(prefix);
    let cursor: Uint8Array = new Uint8Array(0);
    for (;;) {
      const fields = { prefix: p, cursor, count: options.count ?? 100 };
      const body = await this.call(msg.Opcode.SCAN, msg.ScanRequest, fields, false, consistency(options));
      const r = decodeTable(msg.ScanResponse, body);
      for (const k of r.keys as Record<string, unknown>[]) yield utf8.decode(k.key as Uint8Array);
      const next = r.next_cursor as Uint8Array;
      if (next.length === 0) return;
      cursor = Buffer.from(next);
    }
  }

  // ---- admin ----------------------------------------------------------------------------

  /** Round trip; the server echoes `payload`. */
  async ping(payload: Uint8Array = new Uint8Array(0)): Promise<Buffer> {
    const body = await this.call(msg.Opcode.PING, msg.PingRequest, { payload }, false);
    return Buffer.from(decodeTable(msg.PingResponse, body).payload as Uint8Array);
  }

  /** The server's INFO document (one top-level `section`, or all). */
  async info(section?: string): Promise<Record<string, unknown>> {
    const body = await this.call(msg.Opcode.INFO, msg.InfoRequest, { section: section ?? "" }, false);
    const text = decodeTable(msg.InfoResponse, body).json as string;
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new ProtocolError("INFO reply is not JSON");
    }
  }

  /** `VelocityPool(vdb://host:port, poolSize=N)`. */
  toString(): string {
    return `VelocityPool(${formatEndpoint(this.endpoint)}, poolSize=${this.poolSize})`;
  }
}

function consistency(o: ReadOptions): number {
  return o.staleOk ? Consistency.STALE_OK : Consistency.LINEARIZABLE;
}

function ttlMs(ttl: Ttl | undefined): number {
  return ttl === undefined ? 0 : parseTtlMs(ttl);
}

export { VelocityError };
