/**
 * Endpoints: `host`, `host:port`, `vdb://host[:port]`, `[::1]:port` (port 2005 by default).
 *
 * @module
 */

/** The default V-Proto port. */
export const DEFAULT_PORT = 2005;

/** A server address. */
export interface Endpoint {
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

/** Parse an endpoint; throws TypeError when it is not `vdb://HOST[:PORT]`. */
export function parseEndpoint(url: string): Endpoint {
  const rest = url.trim().replace(/^vdb:\/\//, "");
  if (rest.includes("://") || rest.includes("/")) throw new TypeError(`endpoint ${JSON.stringify(url)}: only vdb://HOST:PORT is supported`);
  let host = rest;
  let port = String(DEFAULT_PORT);
  const bracket = /^\[([^\]]+)\](?::(\d*))?$/.exec(rest);
  if (bracket) {
    host = bracket[1] as string;
    port = bracket[2] ?? port;
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon >= 0 && rest.indexOf(":") === colon) {
      host = rest.slice(0, colon);
      port = rest.slice(colon + 1);
    }
  }
  const p = Number(port);
  if (!host || !/^\d+$/.test(port) || p < 1 || p > 65535) {
    throw new TypeError(`endpoint ${JSON.stringify(url)} is not vdb://HOST[:PORT]`);
  }
  return { host, port: p };
}

/** `vdb://host:port`. */
export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(":") ? `vdb://[${e.host}]:${e.port}` : `vdb://${e.host}:${e.port}`;
}

/** Whether two endpoints name the same address. */
export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.host === b.host && a.port === b.port;
}
