/**
 * V-Proto message tables (proto/velocity.fbs) as definitions for the generic
 * codec in flatbuf.ts, and the opcodes (docs/formats/protocol.md section 3).
 *
 * @module
 */

import type { TableDef } from "./flatbuf.js";

/** Request opcodes; a response carries `opcode | 0x80`, an error 0xFF. */
export const Opcode = {
  HELLO: 0x01,
  PING: 0x02,
  INFO: 0x03,
  GET: 0x10,
  SET: 0x11,
  DEL: 0x12,
  EXISTS: 0x13,
  INCR: 0x14,
  EXPIRE: 0x15,
  PERSIST: 0x16,
  TTL: 0x17,
  CAS: 0x18,
  MGET: 0x20,
  MSET: 0x21,
  SCAN: 0x22,
  ERROR: 0xff,
} as const;

/** The bit set on a response's opcode. */
export const RESPONSE_BIT = 0x80;

const t = (table: string, fields: TableDef["fields"]): TableDef => ({ table, fields });

export const HelloRequest = t("HelloRequest", [
  { name: "protocol_version", type: "u16" },
  { name: "token", type: "string" },
  { name: "client_name", type: "string" },
  { name: "features", type: "u32" },
]);
export const HelloResponse = t("HelloResponse", [
  { name: "protocol_version", type: "u16" },
  { name: "server_version", type: "string" },
  { name: "node_id", type: "string" },
  { name: "role", type: "u8" },
  { name: "max_frame_bytes", type: "u64" },
  { name: "max_key_bytes", type: "u32" },
  { name: "max_value_bytes", type: "u32" },
  { name: "features", type: "u32" },
]);
export const PingRequest = t("PingRequest", [{ name: "payload", type: "bytes" }]);
export const PingResponse = t("PingResponse", [{ name: "payload", type: "bytes" }]);
export const KeyRequest = t("KeyRequest", [{ name: "key", type: "bytes" }]);
export const BoolResponse = t("BoolResponse", [{ name: "value", type: "bool" }]);
export const ErrorResponse = t("ErrorResponse", [
  { name: "code", type: "u16" },
  { name: "message", type: "string" },
  { name: "primary", type: "string" },
  { name: "retry_after_ms", type: "u32" },
]);
export const GetResponse = t("GetResponse", [
  { name: "found", type: "bool" },
  { name: "kind", type: "u8" },
  { name: "value", type: "bytes" },
]);
export const SetRequest = t("SetRequest", [
  { name: "key", type: "bytes" },
  { name: "value", type: "bytes" },
  { name: "kind", type: "u8" },
  { name: "ttl_ms", type: "i64" },
  { name: "condition", type: "u8" },
]);
export const SetResponse = t("SetResponse", [{ name: "applied", type: "bool" }]);
export const IncrRequest = t("IncrRequest", [
  { name: "key", type: "bytes" },
  { name: "delta", type: "i64", def: 1n },
]);
export const IncrResponse = t("IncrResponse", [{ name: "value", type: "i64" }]);
export const ExpireRequest = t("ExpireRequest", [
  { name: "key", type: "bytes" },
  { name: "ttl_ms", type: "i64" },
]);
export const TtlResponse = t("TtlResponse", [{ name: "ttl_ms", type: "i64" }]);
export const CasRequest = t("CasRequest", [
  { name: "key", type: "bytes" },
  { name: "expected", type: "bytes" },
  { name: "expected_kind", type: "u8" },
  { name: "expect_absent", type: "bool" },
  { name: "value", type: "bytes" },
  { name: "kind", type: "u8" },
  { name: "ttl_ms", type: "i64" },
]);
export const CasResponse = t("CasResponse", [
  { name: "applied", type: "bool" },
  { name: "found", type: "bool" },
  { name: "kind", type: "u8" },
  { name: "value", type: "bytes" },
]);
export const Key = t("Key", [{ name: "key", type: "bytes" }]);
export const Entry = t("Entry", [
  { name: "key", type: "bytes" },
  { name: "found", type: "bool" },
  { name: "kind", type: "u8" },
  { name: "value", type: "bytes" },
  { name: "ttl_ms", type: "i64" },
]);
export const MGetRequest = t("MGetRequest", [{ name: "keys", type: Key }]);
export const MGetResponse = t("MGetResponse", [{ name: "entries", type: Entry }]);
export const MSetRequest = t("MSetRequest", [{ name: "entries", type: Entry }]);
export const ScanRequest = t("ScanRequest", [
  { name: "prefix", type: "bytes" },
  { name: "cursor", type: "bytes" },
  { name: "count", type: "u32" },
]);
export const ScanResponse = t("ScanResponse", [
  { name: "keys", type: Key },
  { name: "next_cursor", type: "bytes" },
]);
export const InfoRequest = t("InfoRequest", [{ name: "section", type: "string" }]);
export const InfoResponse = t("InfoResponse", [{ name: "json", type: "string" }]);

/** Every table the SDK knows, by schema name (used by the vector tests). */
export const TABLES: Readonly<Record<string, TableDef>> = Object.fromEntries(
  [
    HelloRequest, HelloResponse, PingRequest, PingResponse, KeyRequest, BoolResponse, ErrorResponse,
    GetResponse, SetRequest, SetResponse, IncrRequest, IncrResponse, ExpireRequest, TtlResponse,
    CasRequest, CasResponse, MGetRequest, MGetResponse, MSetRequest, ScanRequest, ScanResponse,
    InfoRequest, InfoResponse,
  ].map((d) => [d.table, d]),
);
