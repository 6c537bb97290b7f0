/**
 * `@velocity/core`: the Node.js SDK for Velocity.
 *
 * ```js
 * import { VelocityPool } from '@velocity/core';
 * const vdb = new VelocityPool({ node: 'alpha-cluster.vdb.io', auth: process.env.VDB_TOKEN });
 * await vdb.connect();
 * await vdb.set('session:0xF1', { active: true }, { ttl: '2h' });
 * ```
 *
 * @packageDocumentation
 */

export { VelocityPool } from "./pool.js";
export type { Key, PoolOptions, ReadOptions, ScanOptions, SetOptions } from "./pool.js";
export type { Ttl } from "./durations.js";
export { parseTtlMs } from "./durations.js";
export { ValueKind, encodeValue, decodeValue } from "./values.js";
export type { Json, Value } from "./values.js";
export { parseEndpoint, formatEndpoint, DEFAULT_PORT } from "./endpoint.js";
export type { Endpoint } from "./endpoint.js";
export * from "./errors.js";
