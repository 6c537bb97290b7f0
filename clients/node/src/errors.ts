/**
 * Errors: one class per V-Proto error code (docs/formats/protocol.md section 6),
 * plus the client-side conditions. Every error the SDK throws is a
 * {@link VelocityError}; programs act on {@link VelocityError.code}.
 *
 * @module
 */

/** Wire error codes carried by ErrorResponse.code. Never renumbered. */
export const ErrorCode = {
  PROTOCOL: 1,
  BAD_CRC: 2,
  FRAME_TOO_LARGE: 3,
  UNKNOWN_OPCODE: 4,
  NOAUTH: 5,
  AUTH_FAILED: 6,
  BUSY: 7,
  WRONG_TYPE: 8,
  OVERFLOW: 9,
  NOT_INTEGER: 10,
  KEY_TOO_LARGE: 11,
  VALUE_TOO_LARGE: 12,
  INVALID_ARGUMENT: 13,
  REDIRECT: 14,
  WRITES_REFUSED: 15,
  SHUTTING_DOWN: 16,
  UNSUPPORTED_VERSION: 17,
  TIMEOUT: 18,
  INTERNAL: 19,
  NOT_ENOUGH_REPLICAS: 20,
  STALE_EPOCH: 21,
  PERMISSION_DENIED: 22,
} as const;

/** Name of a wire error code, e.g. "REDIRECT". */
export type ErrorCodeName = keyof typeof ErrorCode;

const NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([k, v]) => [v, k]));

/** Codes after which the server closes the connection. */
export const FATAL_CODES: ReadonlySet<number> = new Set([1, 2, 3, 5, 6, 7, 16, 17, 18]);

/** Options shared by every error constructor. */
export interface VelocityErrorOptions {
  /** REDIRECT: the primary's endpoint (`vdb://host:port`), empty if unknown. */
  primary?: string;
  /** BUSY/REDIRECT: a retry hint in milliseconds, 0 if none. */
  retryAfterMs?: number;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * Base class of every error the SDK throws. `code` is the V-Proto error code
 * (0 for client-side conditions that have no wire code).
 */
export class VelocityError extends Error {
  /** The V-Proto error code (see {@link ErrorCode}); 0 for client-side errors. */
  readonly code: number;
  /** REDIRECT: the primary named by the server. */
  readonly primary: string;
  /** BUSY/REDIRECT: the server's retry hint in milliseconds. */
  readonly retryAfterMs: number;

  constructor(message: string, code = 0, opts: VelocityErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.primary = opts.primary ?? "";
    this.retryAfterMs = opts.retryAfterMs ?? 0;
  }

  /** The code's name, e.g. "WRONG_TYPE" ("CLIENT" for client-side errors). */
  get codeName(): string {
    return NAMES.get(this.code) ?? (this.code === 0 ? "CLIENT" : `CODE_${this.code}`);
  }

  /** Whether the server closes the connection after this error. */
  get fatal(): boolean {
    return FATAL_CODES.has(this.code);
  }

  /**
   * True when a failed write may nevertheless have been applied: no reply came
   * ({@link UnknownOutcomeError}), or the server answered NOT_ENOUGH_REPLICAS (20)
   * or TIMEOUT (18), which also replace the reply of a write held for sync
   * replication whose replicas did not acknowledge it in time
   * (docs/formats/protocol.md section 5). Read the key back to find out; the SDK
   * never resends such a write.
   */
  get mayHaveHappened(): boolean {
    return this instanceof UnknownOutcomeError || this.code === ErrorCode.TIMEOUT || this.code === ErrorCode.NOT_ENOUGH_REPLICAS;
  }
}

function coded(code: number, name: string): new (message: string, opts?: VelocityErrorOptions) => VelocityError {
  const cls = class extends VelocityError {
    constructor(message: string, opts: VelocityErrorOptions = {}) {
      super(message, code, opts);
    }
  };
  Object.defineProperty(cls, "name", { value: name });
  return cls;
}

/** Malformed frame or body (code 1). */
export class ProtocolError extends coded(1, "ProtocolError") {}
/** CRC trailer mismatch (code 2). */
export class BadCrcError extends coded(2, "BadCrcError") {}
/** Body above the frame limit (code 3). */
export class FrameTooLargeError extends coded(3, "FrameTooLargeError") {}
/** Opcode not assigned (code 4). */
export class UnknownOpcodeError extends coded(4, "UnknownOpcodeError") {}
/** A request before a successful HELLO (code 5). */
export class NoAuthError extends coded(5, "NoAuthError") {}
/** Wrong token (code 6). */
export class AuthFailedError extends coded(6, "AuthFailedError") {}
/** Connection limit reached (code 7). */
export class BusyError extends coded(7, "BusyError") {}
/** Operation does not apply to the value's kind (code 8). */
export class WrongTypeError extends coded(8, "WrongTypeError") {}
/** INCR result outside 64 bits (code 9). */
export class OverflowError extends coded(9, "OverflowError") {}
/** INCR on a non-integer value (code 10). */
export class NotIntegerError extends coded(10, "NotIntegerError") {}
/** Key above the server's limit (code 11). */
export class KeyTooLargeError extends coded(11, "KeyTooLargeError") {}
/** Value above the server's limit (code 12). */
export class ValueTooLargeError extends coded(12, "ValueTooLargeError") {}
/** Empty key, negative TTL, bad cursor, ... (code 13). */
export class InvalidArgumentError extends coded(13, "InvalidArgumentError") {}
/** Not the primary; `primary` names it (code 14). */
export class RedirectError extends coded(14, "RedirectError") {}
/** Storage failed; reads still work (code 15). */
export class WritesRefusedError extends coded(15, "WritesRefusedError") {}
/** The server is stopping (code 16). */
export class ShuttingDownError extends coded(16, "ShuttingDownError") {}
/** Protocol version not spoken (code 17). */
export class UnsupportedVersionError extends coded(17, "UnsupportedVersionError") {}
/**
 * A frame or the handshake took too long (code 18); also the reply of a write
 * held for sync replication that timed out (its outcome is unknown:
 * {@link VelocityError.mayHaveHappened}).
 */
export class ServerTimeoutError extends coded(18, "ServerTimeoutError") {}
/** A server bug (code 19). */
export class InternalError extends coded(19, "InternalError") {}
/**
 * Sync replication lacks replicas (code 20): refused before anything was
 * written, or the reply of a write held for its replicas whose wait failed
 * (its outcome is unknown: {@link VelocityError.mayHaveHappened}).
 */
export class NotEnoughReplicasError extends coded(20, "NotEnoughReplicasError") {}
/** Replication request from an older epoch (code 21). */
export class StaleEpochError extends coded(21, "StaleEpochError") {}
/** The token's role may not run this operation, e.g. an admin command with a client token (code 22). */
export class PermissionDeniedError extends coded(22, "PermissionDeniedError") {}

/**
 * The connection could not be opened or was lost before the request was sent
 * or while a read was in flight. Nothing was written by this request.
 */
export class ConnectionError extends VelocityError {
  constructor(message: string, opts: VelocityErrorOptions = {}) {
    super(message, 0, opts);
  }
}

/**
 * The TLS handshake failed: the certificate is not trusted (wrong CA), does not
 * name the host, or the server does not speak TLS 1.3. Not retried.
 */
export class TlsError extends ConnectionError {}

/**
 * A write was sent but the connection was lost (or the request timed out)
 * before its reply arrived: it may or may not have been applied. The SDK
 * never retries such a write; read the key back to find out.
 */
export class UnknownOutcomeError extends VelocityError {
  /** The opcode of the request whose outcome is unknown. */
  readonly opcode: number;
  constructor(message: string, opcode: number, opts: VelocityErrorOptions = {}) {
    super(message, 0, opts);
    this.opcode = opcode;
  }
}

/** No reply within `timeoutMs` (client side). For writes an UnknownOutcomeError is thrown instead. */
export class RequestTimeoutError extends VelocityError {
  constructor(message: string, opts: VelocityErrorOptions = {}) {
    super(message, 0, opts);
  }
}

/** The pool was closed. */
export class PoolClosedError extends VelocityError {
  constructor(message = "pool is closed") {
    super(message, 0);
  }
}

const BY_CODE = new Map<number, new (message: string, opts?: VelocityErrorOptions) => VelocityError>([
  [1, ProtocolError],
  [2, BadCrcError],
  [3, FrameTooLargeError],
  [4, UnknownOpcodeError],
  [5, NoAuthError],
  [6, AuthFailedError],
  [7, BusyError],
  [8, WrongTypeError],
  [9, OverflowError],
  [10, NotIntegerError],
  [11, KeyTooLargeError],
  [12, ValueTooLargeError],
  [13, InvalidArgumentError],
  [14, RedirectError],
  [15, WritesRefusedError],
  [16, ShuttingDownError],
  [17, UnsupportedVersionError],
  [18, ServerTimeoutError],
  [19, InternalError],
  [20, NotEnoughReplicasError],
  [21, StaleEpochError],
  [22, PermissionDeniedError],
]);

/** The typed error for an ErrorResponse; unknown codes give a plain VelocityError. */
export function errorFromWire(code: number, message: string, primary = "", retryAfterMs = 0): VelocityError {
  const cls = BY_CODE.get(code);
  const opts = { primary, retryAfterMs };
  return cls ? new cls(message, opts) : new VelocityError(message, code, opts);
}
