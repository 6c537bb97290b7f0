/** Shared test helpers: repository paths and vector loading. */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// build/test/helpers.js -> clients/node -> repo root
export const NODE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const REPO = resolve(NODE_DIR, "..", "..");
export const PYTHON = process.env["VELOCITY_PYTHON"] ?? resolve(REPO, ".venv", "bin", "python");

export const hex = (s: string): Buffer => Buffer.from(s, "hex");

export interface ValidVector {
  name: string;
  opcode: number;
  flags: number;
  message: string;
  fields: Record<string, unknown>;
  body_hex: string;
  frame_hex: string;
}
export interface InvalidVector {
  name: string;
  frame_hex: string;
  error: string;
}
export interface FrameVectors {
  valid: ValidVector[];
  invalid: InvalidVector[];
}

export function frameVectors(): FrameVectors {
  return JSON.parse(readFileSync(resolve(REPO, "proto", "vectors", "frames.json"), "utf8")) as FrameVectors;
}

export interface ValueCase {
  name: string;
  type: "bytes" | "str" | "int" | "json";
  value: unknown;
  kind: number;
  payload_hex: string;
}

export function valueCases(): ValueCase[] {
  return (JSON.parse(readFileSync(resolve(REPO, "proto", "vectors", "values.json"), "utf8")) as { cases: ValueCase[] }).cases;
}

/** The JavaScript value a case stands for (ints beyond 2^53 as bigint). */
export function caseValue(c: ValueCase): unknown {
  if (c.type === "bytes") return hex(c.value as string);
  if (c.type === "int") {
    const n = typeof c.value === "string" ? BigInt(c.value) : BigInt(c.value as number);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }
  return c.value;
}

/** A small deterministic PRNG (mulberry32), so a failing fuzz case can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
