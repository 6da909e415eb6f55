/**
 * What a listener is, shared by the adapters that run the health handler on a socket: the
 * options and timeouts, the running {@link Listener}, and the small parts every adapter uses
 * (graceful draining, certificate checks, one-line error reasons).
 *
 * @module
 */

import { errorLine, type Logger } from "./log.ts";
import { tlsMaterialProblem } from "./tls_material.ts";

/** A request handler as the listeners run it. */
export type Handler = (req: Request) => Response | Promise<Response>;

/**
 * Timeouts of a listener, in milliseconds. A slow or silent client is cut off, and holds only
 * its own connection until then.
 */
export interface ListenTimeouts {
  /** The TLS handshake must finish within this of connecting. */
  handshakeMs: number;
  /**
   * The first request must have arrived, headers and all, within this of connecting (with TLS:
   * of the handshake).
   */
  headersMs: number;
  /**
   * A connection with no request in flight is closed this long after its last answer (also
   * bounding a client that starts its next request and never finishes it). Above the 60 s idle
   * timeout of AWS load balancers, so that they close a kept-alive connection first.
   */
  idleMs: number;
  /** How long `shutdown()` waits for in-flight requests before giving up on them. */
  shutdownMs: number;
}

/** Defaults for {@link ListenTimeouts}. */
export const defaultTimeouts: Readonly<ListenTimeouts> = {
  handshakeMs: 10_000,
  headersMs: 15_000,
  idleMs: 75_000,
  shutdownMs: 5_000,
};

/** Options for {@link serveHealth}. */
export interface ListenOptions {
  /** `host:port`, `:port` (all interfaces), `[v6]:port`; port 0 picks a free port. */
  addr: string;
  handler: Handler;
  /** PEM contents of the server certificate (chain) and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** PEM of the CA that signs client certificates; when set, they are required (mTLS). */
  clientCa?: string;
  logger: Logger;
  /** Overrides for {@link defaultTimeouts}. */
  timeouts?: Partial<ListenTimeouts>;
  /**
   * HTTPS on `Deno.serve` only (`denoServe`, or a Deno without per-connection serving; otherwise
   * the port is never bound again): bind with `SO_REUSEPORT`, so that
   * {@link Listener.updateCertificate} can start the new server before the old one stops (no
   * connection is refused). Deno allows it only with `--unstable-net` (and exits the process when
   * it is asked for without), so the default is {@link canReusePort}(); `true` without
   * `--unstable-net` is a listen error; `false` makes certificate updates close and bind the port
   * again.
   */
  reusePort?: boolean;
  /**
   * Plain and HTTPS: run the socket with `Deno.serve`, without header and idle timeouts, as when
   * the running Deno cannot serve connection by connection ({@link connectionTimeoutsSupported}).
   */
  denoServe?: boolean;
}

/** A running listener. */
export interface Listener {
  /** The address actually bound (e.g. `127.0.0.1` for `localhost`, `::` for `:8080`). */
  readonly hostname: string;
  /** The port actually bound (the real one when 0 was asked for). */
  readonly port: number;
  /** `http(s)://host:port` of the bound address (IPv6 in brackets). */
  readonly url: string;
  /**
   * Stops accepting, lets in-flight requests finish (at most `shutdownMs`), then closes.
   * Idempotent.
   */
  shutdown(): Promise<void>;
  /**
   * Serves a new certificate and key (PEM) to new connections, on the same port; connections
   * already open and requests in flight finish undisturbed. Resolves once new handshakes get the
   * new certificate. Rejects, keeping the current certificate, when the pair is unusable, the
   * listener is plain HTTP or has been shut down. Concurrent calls are applied in order.
   */
  updateCertificate(pem: { cert: string; key: string }): Promise<void>;
}

/**
 * Whether HTTPS listeners may use `SO_REUSEPORT` here: only with `--unstable-net`
 * (detected through `Deno.listenDatagram`, which exists only under that flag) on a POSIX system.
 */
export function canReusePort(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function" &&
    Deno.build.os !== "windows";
}

/** ALPN protocols of the HTTPS listeners, preferred first. */
export const ALPN = ["h2", "http/1.1"];

/** The `updateCertificate` error for an unusable pair. */
export const certificateError = (e: unknown) => new Error(`certificate not replaced: ${reason(e)}`);

/** Waits at most `ms` for a graceful shutdown's in-flight requests. */
export function drain(
  shutdown: Promise<unknown>,
  ms: number,
  log: Logger,
  why: string,
): Promise<void> {
  return bounded(shutdown, ms, () => {
    log.warn(`${why}: gave up waiting for in-flight requests`, { waitedMs: ms });
  });
}

/** The common parts of a {@link Listener}. */
export function listenerFor(
  hostname: string,
  port: number,
  scheme: string,
  shutdown: () => Promise<void>,
  updateCertificate: Listener["updateCertificate"],
): Listener {
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return { hostname, port, url: `${scheme}://${host}:${port}`, shutdown, updateCertificate };
}

/** Resolves when `p` settles or after `ms`, whichever comes first (then calls `onTimeout`). */
export async function bounded(
  p: Promise<unknown>,
  ms: number,
  onTimeout: () => void,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    const late = await Promise.race([p.then(() => false, () => false), timedOut]);
    if (late) onTimeout();
  } finally {
    clearTimeout(timer);
  }
}

/** How the listeners name the parts of their TLS material in messages. */
const LISTENER_TLS_NAMES = { cert: "TLS certificate", key: "TLS key", ca: "client CA certificate" };

/** Throws `fail(problem)` when the certificate, key or CA cannot be used. */
export function checkPem(
  cert: string,
  key: string,
  ca: string | undefined,
  fail: (e: unknown) => Error,
): void {
  const problem = tlsMaterialProblem({ cert, key, ca }, LISTENER_TLS_NAMES);
  if (problem) throw fail(problem);
}

/** A one-line, lower-case reason for an error, without stack or `(os error N)` noise. */
export function reason(e: unknown): string {
  if (e instanceof Deno.errors.AddrInUse || (e as { code?: string })?.code === "EADDRINUSE") {
    return "address already in use";
  }
  if (e instanceof Deno.errors.AddrNotAvailable) return "address not available";
  // Deno's own message names the flag to add (--allow-net).
  if (e instanceof Deno.errors.NotCapable) return errorLine(e);
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  const first = errorLine(e);
  return first[0].toLowerCase() + first.slice(1);
}
