/**
 * TTLs: seconds as numbers, or strings like "2h", "30s", "1500ms", "1h30m"
 * (the Python SDK's velocity/durations.py).
 *
 * @module
 */

/** A TTL: seconds (number), or a duration string such as "2h", "30s", "1500ms", "1h30m", "1.5d". */
export type Ttl = number | string;

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/** Milliseconds for a TTL; throws RangeError for anything unclear or not positive. */
export function parseTtlMs(ttl: Ttl): number {
  let ms: number;
  if (typeof ttl === "number") {
    if (!Number.isFinite(ttl)) throw new RangeError(`TTL must be finite, got ${ttl}`);
    ms = Math.round(ttl * 1000);
  } else if (typeof ttl === "string") {
    const text = ttl.trim().toLowerCase();
    if (/^\d+(\.\d+)?$/.test(text)) {
      ms = Math.round(parseFloat(text) * 1000);
    } else {
      let pos = 0;
      let total = 0;
      PART.lastIndex = 0;
      for (let m = PART.exec(text); m !== null; m = PART.exec(text)) {
        total += parseFloat(m[1] as string) * (UNITS_MS[m[2] as string] as number);
        pos = PART.lastIndex;
      }
      if (pos !== text.length || text.length === 0) {
        throw new RangeError(`cannot read TTL ${JSON.stringify(ttl)}: use e.g. 30s, 1500ms, 2h, 1h30m or seconds`);
      }
      ms = Math.round(total);
    }
  } else {
    throw new TypeError(`cannot read a TTL of type ${typeof ttl}`);
  }
  if (ms <= 0) throw new RangeError(`TTL must be positive, got ${JSON.stringify(ttl)}`);
  return ms;
}
