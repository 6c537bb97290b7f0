/**
 * One V-Proto connection: TLS 1.3 (or plaintext with `insecure`), HELLO, then
 * pipelined requests whose replies are matched in order (a FIFO of pending
 * requests; the protocol has no request ids).
 *
 * Failure handling: when the socket dies, framing breaks or the oldest request
 * exceeds its deadline, the connection is closed and every pending request is
 * rejected: writes with UnknownOutcomeError (they may have been applied),
 * reads with ConnectionError or RequestTimeoutError.
 *
 * @module
 */

import * as net from "node:net";
import * as tls from "node:tls";
import type { Endpoint } from "./endpoint.js";
import { formatEndpoint } from "./endpoint.js";
import {
  ConnectionError,
  ProtocolError,
  RequestTimeoutError,
  TlsError,
  UnknownOutcomeError,
  VelocityError,
  errorFromWire,
} from "./errors.js";
import { decodeTable } from "./flatbuf.js";
import { type Frame, FrameDecoder, encodeTableFrame } from "./frame.js";
import * as msg from "./messages.js";

/** How to open a connection. */
export interface ConnectOptions {
  /** Plaintext (the server runs --insecure); no certificate checks. */
  insecure: boolean;
  /** Trusted CA certificates (PEM); undefined: the system roots. */
  ca: string | undefined;
  /** TLS server name to verify; defaults to the endpoint's host. */
  servername: string | undefined;
  token: string;
  clientName: string;
  /** Connect + TLS + HELLO deadline, and each request's deadline. */
  timeoutMs: number;
}

/** The server's HELLO reply. */
export interface HelloInfo {
  serverVersion: string;
  nodeId: string;
  /** 0 primary, 1 replica. */
  role: number;
  maxFrameBytes: bigint;
  maxKeyBytes: number;
  maxValueBytes: number;
}

interface Pending {
  opcode: number;
  write: boolean;
  deadline: number;
  resolve: (body: Buffer) => void;
  reject: (err: VelocityError) => void;
}

/** A single pipelined connection. Use {@link Connection.open}. */
export class Connection {
  /** The server's HELLO reply. */
  hello: HelloInfo | undefined;
  private readonly decoder = new FrameDecoder();
  private readonly queue: (Pending | undefined)[] = [];
  private head = 0;
  private error: VelocityError | undefined;
  private corked = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly closedPromise: Promise<void>;
  private markClosed!: () => void;

  private constructor(
    private readonly socket: net.Socket,
    readonly endpoint: Endpoint,
    private readonly timeoutMs: number,
  ) {
    this.closedPromise = new Promise((r) => (this.markClosed = r));
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (e: Error) => this.fail(new ConnectionError(`connection to ${formatEndpoint(endpoint)}: ${e.message}`, { cause: e })));
    socket.on("close", () => {
      this.fail(new ConnectionError(`connection to ${formatEndpoint(endpoint)} closed by the server`));
      this.markClosed();
    });
  }

  /** Connect, handshake (TLS 1.3 unless insecure) and HELLO. */
  static async open(endpoint: Endpoint, opts: ConnectOptions): Promise<Connection> {
    const where = formatEndpoint(endpoint);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      let s: net.Socket;
      const onError = (e: Error): void => {
        clearTimeout(t);
        s.destroy();
        const code = String((e as NodeJS.ErrnoException).code ?? "");
        const tlsFailure = /CERT|SSL|TLS|SIGNATURE|ISSUER/.test(code);
        reject(
          tlsFailure
            ? new TlsError(`TLS handshake with ${where} failed: ${e.message}`, { cause: e })
            : new ConnectionError(`cannot connect to ${where}: ${e.message}`, { cause: e }),
        );
      };
      const t = setTimeout(() => onError(new Error(`no connection within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      const done = (): void => {
        clearTimeout(t);
        s.off("error", onError);
        resolve(s);
      };
      if (opts.insecure) {
        s = net.connect({ host: endpoint.host, port: endpoint.port }, done);
      } else {
        const servername = opts.servername ?? endpoint.host;
        s = tls.connect(
          {
            host: endpoint.host,
            port: endpoint.port,
            minVersion: "TLSv1.3",
            maxVersion: "TLSv1.3",
            ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
            // SNI must not be an IP address; the certificate check still uses it.
            ...(net.isIP(servername) ? {} : { servername }),
            checkServerIdentity: (_host, cert) => tls.checkServerIdentity(servername, cert),
          },
          done,
        );
      }
      s.once("error", onError);
    });
    const conn = new Connection(socket, endpoint, opts.timeoutMs);
    try {
      const hello = encodeTableFrame(msg.Opcode.HELLO, 0, msg.HelloRequest, {
        protocol_version: 1,
        token: opts.insecure ? "" : opts.token,
        client_name: opts.clientName,
        features: 0,
      });
      const body = await conn.request(msg.Opcode.HELLO, hello, false);
      const h = decodeTable(msg.HelloResponse, body);
      conn.hello = {
        serverVersion: h.server_version as string,
        nodeId: h.node_id as string,
        role: h.role as number,
        maxFrameBytes: h.max_frame_bytes as bigint,
        maxKeyBytes: h.max_key_bytes as number,
        maxValueBytes: h.max_value_bytes as number,
      };
    } catch (e) {
      conn.close();
      throw e;
    }
    return conn;
  }

  /** Whether the connection can take requests. */
  get isOpen(): boolean {
    return this.error === undefined;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.queue.length - this.head;
  }

  /**
   * Send one request (a complete frame for `opcode`); resolves to the reply
   * body. ERROR replies reject with the typed error. `write` marks requests whose outcome is unknown if the
   * connection is lost before the reply (they reject with UnknownOutcomeError).
   */
  request(opcode: number, frame: Buffer, write: boolean): Promise<Buffer> {
    if (this.error !== undefined) {
      // Not sent: safe to retry elsewhere, whatever the request is.
      return Promise.reject(new ConnectionError(`connection is closed (${this.error.message})`, { cause: this.error }));
    }
    return new Promise<Buffer>((resolve, reject) => {
      this.queue.push({ opcode, write, deadline: Date.now() + this.timeoutMs, resolve, reject });
      if (!this.corked) {
        // Batch the frames of one tick into one write (pipelining).
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      this.socket.write(frame);
      if (this.timer === undefined) this.armTimer();
    });
  }

  private armTimer(): void {
    const period = Math.max(10, Math.min(1000, Math.floor(this.timeoutMs / 4)));
    this.timer = setInterval(() => {
      const p = this.queue[this.head];
      if (p === undefined) {
        clearInterval(this.timer);
        this.timer = undefined;
      } else if (Date.now() > p.deadline) {
        this.fail(new RequestTimeoutError(`no reply from ${formatEndpoint(this.endpoint)} within ${this.timeoutMs} ms`));
      }
    }, period);
    this.timer.unref();
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.feed(chunk);
    } catch (e) {
      this.fail(e instanceof VelocityError ? e : new ProtocolError(String(e)));
      return;
    }
    for (const f of frames) {
      const p = this.queue[this.head];
      if (p === undefined) {
        // A server speaks first only to say why it closes (BUSY, SHUTTING_DOWN, TIMEOUT).
        this.fail(unsolicited(f));
        return;
      }
      this.queue[this.head++] = undefined;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      let result: Buffer | VelocityError;
      try {
        result = replyBody(p.opcode, f);
      } catch (e) {
        result = e instanceof VelocityError ? e : new ProtocolError(String(e));
      }
      if (result instanceof VelocityError) p.reject(result);
      else p.resolve(result);
      if (result instanceof VelocityError && result.fatal) {
        this.fail(result);
        return;
      }
    }
  }

  private fail(err: VelocityError): void {
    if (this.error === undefined) this.error = err;
    if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    const pending = this.queue.slice(this.head);
    this.queue.length = 0;
    this.head = 0;
    for (const p of pending) {
      if (p === undefined) continue;
      if (p.write) {
        p.reject(
          new UnknownOutcomeError(
            `outcome unknown: ${err.message} while a write (opcode 0x${p.opcode.toString(16)}) was in flight`,
            p.opcode,
            { cause: err },
          ),
        );
      } else {
        p.reject(err);
      }
    }
    this.socket.destroy();
  }

  /** Close now; pending requests are rejected. */
  close(): void {
    this.fail(new ConnectionError("connection closed by the client"));
  }

  /** Resolves once the socket is closed. */
  closed(): Promise<void> {
    return this.closedPromise;
  }
}

function unsolicited(f: Frame): VelocityError {
  if (f.opcode === msg.Opcode.ERROR) {
    try {
      const e = decodeTable(msg.ErrorResponse, f.body);
      return errorFromWire(e.code as number, e.message as string, e.primary as string, e.retry_after_ms as number);
    } catch {
      /* fall through */
    }
  }
  return new ProtocolError(`reply (opcode 0x${f.opcode.toString(16)}) received with no request outstanding`);
}

/** The body of a reply to `opcode`, or the typed error it carries. Throws only VelocityError. */
export function replyBody(opcode: number, f: Frame): Buffer {
  if (f.opcode === msg.Opcode.ERROR) {
    const e = decodeTable(msg.ErrorResponse, f.body);
    throw errorFromWire(e.code as number, e.message as string, e.primary as string, e.retry_after_ms as number);
  }
  if (f.opcode !== (opcode | msg.RESPONSE_BIT)) {
    throw new ProtocolError(`reply opcode 0x${f.opcode.toString(16)} does not answer request 0x${opcode.toString(16)}`);
  }
  return f.body;
}
