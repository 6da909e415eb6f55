/**
 * Listener adapters: run a `(Request) => Response` handler on a socket. This module picks the
 * adapter; `listener.ts` says what a listener is, `deno_listener.ts` (on top of
 * `deno_connections.ts`, the one user of a Deno internal, and `tls_gate.ts`) is the adapter.
 *
 * Every listener serves with Deno's own HTTP engine, the one behind `Deno.serve` (HTTP/1.1 and h2c
 * with prior knowledge on plain; ALPN `h2` and `http/1.1` with TLS), one connection at a time so
 * that slow and idle connections can be closed ({@link ListenTimeouts}). HTTPS and mTLS go
 * through a gate (`tls_gate.ts`) that terminates TLS in `node:tls`, closes connections whose
 * handshake stalls and, for mTLS, asks for client certificates (`Deno.serve` cannot) and admits
 * only clients whose certificate `client_cert.ts` accepts.
 *
 * A TLS listener's certificate can be replaced while it runs ({@link Listener.updateCertificate}):
 * the gate gives new handshakes the new pair on the same socket. Only on the `Deno.serve`
 * fallback (a Deno without per-connection serving) is an HTTPS port itself bound again
 * (`SO_REUSEPORT` with `--unstable-net`, else close and bind). Open connections finish
 * undisturbed either way.
 *
 * @module
 */

import { parseListenAddr } from "./address.ts";
import { serveDeno } from "./deno_listener.ts";
import type { Logger } from "./log.ts";
import {
  canReusePort,
  checkPem,
  defaultTimeouts,
  type Handler,
  type Listener,
  type ListenOptions,
  reason,
} from "./listener.ts";

export { connectionTimeoutsSupported } from "./deno_connections.ts";
export { canReusePort, defaultTimeouts } from "./listener.ts";
export type { Listener, ListenOptions, ListenTimeouts } from "./listener.ts";

/**
 * Starts serving `handler` on `addr`. Rejects with a one-line `Error` (`cannot listen on <addr>:
 * <why>`) when the address cannot be bound or the certificate, key or CA is unusable.
 */
export async function serveHealth(opts: ListenOptions): Promise<Listener> {
  const { hostname, port } = parseListenAddr(opts.addr);
  const timeouts = { ...defaultTimeouts, ...opts.timeouts };
  const handler = guarded(opts.handler, opts.logger);
  const anyHost = opts.addr.startsWith(":");
  const fail = (e: unknown) => new Error(`cannot listen on ${opts.addr}: ${reason(e)}`);

  if (opts.tls) checkPem(opts.tls.cert, opts.tls.key, opts.clientCa, fail);
  else if (opts.clientCa) throw fail("a client CA needs a server certificate and key");
  if (opts.reusePort && !canReusePort()) throw fail("reusePort needs deno --unstable-net");

  const start = (host: string) =>
    Promise.resolve().then(() => serveDeno(host, port, opts, handler, timeouts));
  let listener: Listener;
  try {
    try {
      listener = await start(hostname);
    } catch (e) {
      // `:port` on a host without IPv6: take all IPv4 interfaces instead.
      if (!(anyHost && isAddressFamilyError(e))) throw e;
      listener = await start("0.0.0.0");
    }
  } catch (e) {
    throw fail(e);
  }
  opts.logger.info("listening", { url: listener.url, mtls: Boolean(opts.clientCa) });
  return listener;
}

/** Wraps a handler so an exception becomes a bare 500 (logged, never shown to the client). */
function guarded(
  handler: ListenOptions["handler"],
  logger: Logger,
): Handler {
  const failed = (e: unknown) => {
    logger.error("request handler failed", { error: reason(e) });
    return new Response("internal error\n", {
      status: 500,
      headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
    });
  };
  // Synchronous answers stay synchronous: Deno's HTTP engine sends them without another turn.
  return (req) => {
    try {
      const res = handler(req);
      return res instanceof Response ? res : res.catch(failed);
    } catch (e) {
      return failed(e);
    }
  };
}

/** True for "this host has no IPv6" style errors. */
function isAddressFamilyError(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  const msg = e instanceof Error ? e.message : String(e);
  return code === "EAFNOSUPPORT" || code === "EADDRNOTAVAIL" ||
    /address family not supported|cannot assign requested address/i.test(msg);
}
