/**
 * The one listen-address grammar (`host:port`, `:port`, `[v6]:port`), used both by flag
 * validation and by the listeners, so an address that passes one never fails the other.
 *
 * @module
 */

/** A listen address split into the hostname to bind and the port. */
export interface ListenAddr {
  readonly hostname: string;
  readonly port: number;
}

const HOST = /^[0-9A-Za-z_.-]*$/;
const IPV6 = /^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(%[0-9A-Za-z_.-]+)?$/;

function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * Splits a listen address, or says in one line why it is not one. An empty host (`:8080`) means
 * all interfaces and becomes `::`, which on Linux and macOS also accepts IPv4 (like Go's
 * `:8080`); the listener falls back to `0.0.0.0` on hosts without IPv6.
 */
export function splitListenAddr(addr: string): ListenAddr | { error: string } {
  const m = /^(?:\[([^\]]*)\]|([^\[\]:]*)):([^:]*)$/.exec(addr);
  if (!m) {
    if (/^[0-9a-fA-F:]*:[0-9a-fA-F:]*:/.test(addr)) {
      return { error: "IPv6 addresses need brackets, e.g. [::]:8080" };
    }
    return { error: "expected host:port, e.g. localhost:8080, :8080, 0.0.0.0:8080 or [::]:8080" };
  }
  const [, v6, host, port] = m;
  if (v6 !== undefined && !IPV6.test(v6)) {
    return { error: `${quote(v6)} is not an IPv6 address (brackets are only for IPv6)` };
  }
  if (host !== undefined && !HOST.test(host)) {
    return { error: `${quote(host)} is not a host name or address` };
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
    return { error: `port ${quote(port)} is not a number from 0 to 65535` };
  }
  const hostname = v6 ?? host;
  return { hostname: hostname === "" ? "::" : hostname, port: Number(port) };
}

/**
 * Splits a listen address; throws a `RangeError` with a one-line message
 * (`invalid listen address "<addr>": <why>`) on anything malformed.
 */
export function parseListenAddr(addr: string): ListenAddr {
  const split = splitListenAddr(addr);
  if ("error" in split) {
    throw new RangeError(`invalid listen address ${quote(addr)}: ${split.error}`);
  }
  return split;
}
