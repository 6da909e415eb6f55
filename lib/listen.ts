/**
 * Listener adapters: run a `(Request) => Response` handler on a socket.
 *
 * - Plain HTTP and TLS use `Deno.serve` (HTTP/1.1 and h2c with prior knowledge on plain; ALPN
 *   `h2` and `http/1.1` with TLS).
 * - mTLS (client certificates required) uses `node:http2`'s secure server, because `Deno.serve`
 *   cannot request client certificates; a small adapter turns its requests into Web `Request`s.
 *
 * A TLS listener's certificate can be replaced while it runs ({@link Listener.updateCertificate}):
 * `node:http2` swaps its secure context; `Deno.serve` cannot, so a second server with the new
 * certificate is started on the same port (`SO_REUSEPORT`, which Deno only allows with
 * `--unstable-net`) and the old one drains; without `--unstable-net` the old server is closed and
 * the port bound again, refusing new connections for a few milliseconds.
 *
 * @module
 */

import http2 from "node:http2";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { Logger } from "./log.ts";

/** Timeouts of a listener, in milliseconds. */
export interface ListenTimeouts {
  /** TLS handshake must finish within this (node adapter). */
  handshakeMs: number;
  /**
   * HTTP/1 request headers must arrive within this, counted from the connection or from the
   * previous response (so it also bounds keep-alive idleness) (node adapter).
   */
  headersMs: number;
  /** A connection or HTTP/2 session with no traffic for this long is closed (node adapter). */
  idleMs: number;
  /** How long `shutdown()` waits for in-flight requests before giving up on them. */
  shutdownMs: number;
}

/** Defaults for {@link ListenTimeouts}. */
export const defaultTimeouts: Readonly<ListenTimeouts> = {
  handshakeMs: 10_000,
  headersMs: 15_000,
  idleMs: 60_000,
  shutdownMs: 5_000,
};

/** Options for {@link serveHealth}. */
export interface ListenOptions {
  /** `host:port`, `:port` (all interfaces), `[v6]:port`; port 0 picks a free port. */
  addr: string;
  handler: (req: Request) => Promise<Response> | Response;
  /** PEM contents of the server certificate (chain) and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** PEM of the CA that signs client certificates; when set, they are required (mTLS). */
  clientCa?: string;
  logger: Logger;
  /** Overrides for {@link defaultTimeouts}. */
  timeouts?: Partial<ListenTimeouts>;
  /**
   * TLS on `Deno.serve` only: bind with `SO_REUSEPORT`, so that {@link Listener.updateCertificate}
   * can start the new server before the old one stops (no connection is refused). Deno allows it
   * only with `--unstable-net` (and exits the process when it is asked for without), so the
   * default is {@link canReusePort}(); `true` without `--unstable-net` is a listen error;
   * `false` makes certificate updates close and bind the port again.
   */
  reusePort?: boolean;
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
 * Whether `Deno.serve` TLS listeners may use `SO_REUSEPORT` here: only with `--unstable-net`
 * (detected through `Deno.listenDatagram`, which exists only under that flag) on a POSIX system.
 */
export function canReusePort(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function" &&
    Deno.build.os !== "windows";
}

/**
 * Splits a listen address into hostname and port. An empty host (`:8080`) means all interfaces
 * and becomes `::`, which on Linux and macOS also accepts IPv4 (like Go's `:8080`);
 * {@link serveHealth} falls back to `0.0.0.0` on hosts without IPv6. Throws a `RangeError` with a
 * one-line message on anything malformed.
 */
export function parseListenAddr(addr: string): { hostname: string; port: number } {
  const bad = (why: string) => new RangeError(`invalid listen address "${addr}": ${why}`);
  let host: string;
  let portText: string;
  if (addr.startsWith("[")) {
    const end = addr.indexOf("]");
    if (end < 0) throw bad("missing ']'");
    host = addr.slice(1, end);
    if (addr[end + 1] !== ":") throw bad("missing port");
    portText = addr.slice(end + 2);
    if (!host.includes(":")) throw bad("brackets are only for IPv6 addresses");
  } else {
    const colon = addr.lastIndexOf(":");
    if (colon < 0) throw bad("missing port");
    host = addr.slice(0, colon);
    portText = addr.slice(colon + 1);
    if (host.includes(":")) throw bad("IPv6 addresses must be in brackets, as [::1]:8080");
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw bad(portText === "" ? "missing port" : `bad port "${portText}"`);
  }
  if (!/^[A-Za-z0-9._%:-]*$/.test(host)) throw bad(`bad host "${host}"`);
  return { hostname: host === "" ? "::" : host, port: Number(portText) };
}

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
    opts.clientCa
      ? serveNode(host, port, opts, handler, timeouts)
      : Promise.resolve(serveDeno(host, port, opts, handler, timeouts));
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
): (req: Request) => Response | Promise<Response> {
  const failed = (e: unknown) => {
    logger.error("request handler failed", { error: reason(e) });
    return new Response("internal error\n", {
      status: 500,
      headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
    });
  };
  // Synchronous answers stay synchronous: Deno.serve sends them without another turn.
  return (req) => {
    try {
      const res = handler(req);
      return res instanceof Response ? res : res.catch(failed);
    } catch (e) {
      return failed(e);
    }
  };
}

/**
 * Plain HTTP or TLS on `Deno.serve`. Throws synchronously on bind or certificate errors.
 * `Deno.serve` has no handshake, header or idle timeouts (measured: a silent or dripping client
 * stays connected for over 70 s); each connection is served on its own, so such a client holds
 * only its own socket and never delays other clients.
 */
function serveDeno(
  hostname: string,
  port: number,
  opts: ListenOptions,
  handler: (req: Request) => Response | Promise<Response>,
  timeouts: ListenTimeouts,
): Listener {
  const log = opts.logger;
  const options = {
    onListen() {}, // no "Listening on" line on stdout; serveHealth logs instead
    onError(e: unknown) {
      log.error("request failed", { error: reason(e) });
      return new Response("internal error\n", { status: 500 });
    },
  };
  if (!opts.tls) {
    const server = Deno.serve({ ...options, hostname, port }, handler);
    const addr = server.addr as Deno.NetAddr;
    let closing: Promise<void> | undefined;
    return listenerFor(
      addr.hostname,
      addr.port,
      "http",
      () => closing ??= drain(server, timeouts.shutdownMs, log, "shutdown"),
      () => Promise.reject(certificateError("a plain HTTP listener has no certificate")),
    );
  }

  const reusePort = opts.reusePort ?? canReusePort();
  const serveTls = (pem: { cert: string; key: string }, host: string, p: number) =>
    Deno.serve({ ...options, hostname: host, port: p, reusePort, ...pem }, handler);
  if (reusePort) {
    // SO_REUSEPORT would also let a second copy of this program share the port without a word;
    // an ordinary bind first keeps "address already in use" for that mistake.
    const probe = Deno.listen({ hostname, port });
    ({ hostname, port } = probe.addr);
    probe.close();
  }
  let current: Deno.HttpServer | undefined = serveTls(opts.tls, hostname, port);
  let pem = opts.tls;
  const bound = current.addr as Deno.NetAddr;
  const draining = new Set<Promise<void>>();
  const retire = (server: Deno.HttpServer, why: string) => {
    const done = drain(server, timeouts.shutdownMs, log, why);
    draining.add(done);
    done.then(() => draining.delete(done));
    return done;
  };

  // With SO_REUSEPORT: start the new server, then drain the old one (the kernel spreads new
  // connections over both until the old one closes). Without: close the old one and bind again.
  // Either way the old server's in-flight requests finish in the background.
  const swap = async (next: { cert: string; key: string }) => {
    if (reusePort) {
      const old = current;
      current = serveTls(next, bound.hostname, bound.port); // throws on a bad pair: old kept
      pem = next;
      if (old) retire(old, "certificate update");
      return;
    }
    // The old server goes before the new one exists, so prove the pair loads first (when net
    // permissions allow a throwaway listener; otherwise a failure rebinds the old pair below).
    try {
      Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...next }).close();
    } catch (e) {
      if (!(e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable)) {
        throw e;
      }
    }
    const t0 = performance.now();
    if (current) retire(current, "certificate update");
    current = undefined;
    try {
      current = await rebind(() => serveTls(next, bound.hostname, bound.port));
      pem = next;
    } catch (e) {
      try {
        current = await rebind(() => serveTls(pem, bound.hostname, bound.port));
      } catch {
        log.error("certificate update: lost the listening port", { url: listener.url });
      }
      throw e;
    }
    log.warn(
      "certificate update: new connections were refused while the port was bound again " +
        "(run deno with --unstable-net for seamless updates)",
      { url: listener.url, refusedMs: Math.round((performance.now() - t0) * 10) / 10 },
    );
  };

  let closed = false;
  let closing: Promise<void> | undefined;
  let swaps: Promise<unknown> = Promise.resolve();
  const listener = listenerFor(
    bound.hostname,
    bound.port,
    "https",
    () =>
      closing ??= (async () => {
        closed = true;
        await swaps;
        if (current) retire(current, "shutdown");
        await Promise.all(draining);
      })(),
    // deno-lint-ignore require-await -- async so that every failure is a rejection
    async (next) => {
      const check = () => {
        if (closed) throw new Error("the listener is shut down");
        checkPem(next.cert, next.key, undefined, certificateError);
      };
      check();
      const run = swaps.then(() => {
        check(); // again: a shutdown may have come first
        return swap(next);
      }).catch((e) => {
        throw e instanceof Error && e.message.startsWith("certificate not replaced")
          ? e
          : certificateError(e);
      });
      swaps = run.catch(() => {});
      return run;
    },
  );
  return listener;
}

/** The `updateCertificate` error for an unusable pair. */
const certificateError = (e: unknown) => new Error(`certificate not replaced: ${reason(e)}`);

/** Binds again (the old socket closes asynchronously), retrying "in use" for up to 1 s. */
async function rebind(bind: () => Deno.HttpServer): Promise<Deno.HttpServer> {
  const t0 = performance.now();
  for (;;) {
    try {
      return bind();
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse) || performance.now() - t0 > 1000) throw e;
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

/** Shuts a `Deno.serve` server down, waiting at most `ms` for its in-flight requests. */
function drain(server: Deno.HttpServer, ms: number, log: Logger, why: string): Promise<void> {
  return bounded(server.shutdown(), ms, () => {
    log.warn(`${why}: gave up waiting for in-flight requests`, { waitedMs: ms });
  });
}

/** The common parts of a {@link Listener}. */
function listenerFor(
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
async function bounded(p: Promise<unknown>, ms: number, onTimeout: () => void): Promise<void> {
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

/**
 * mTLS on `node:http2`'s secure server (HTTP/2 and, through `allowHTTP1`, HTTP/1.1): clients
 * without a certificate signed by `clientCa` are refused during the handshake.
 */
async function serveNode(
  hostname: string,
  port: number,
  opts: ListenOptions,
  handler: (req: Request) => Response | Promise<Response>,
  timeouts: ListenTimeouts,
): Promise<Listener> {
  const server = http2.createSecureServer({
    allowHTTP1: true,
    requestCert: true,
    rejectUnauthorized: true,
    ca: opts.clientCa,
    cert: opts.tls!.cert,
    key: opts.tls!.key,
    ALPNProtocols: ["h2", "http/1.1"],
    handshakeTimeout: timeouts.handshakeMs,
    settings: { maxConcurrentStreams: 100 },
  });
  const log = opts.logger;
  const sessions = new Set<http2.ServerHttp2Session>();
  const h1 = new Map<TLSSocket, { busy: number; timer?: ReturnType<typeof setTimeout> }>();
  let closing = false;

  // HTTP/1 sockets must send request headers within headersMs (Deno's node:http2 does not apply
  // `headersTimeout` to HTTP/1 connections, so a slowloris client is timed out here).
  const armHeaders = (sock: TLSSocket) => {
    const state = h1.get(sock);
    if (!state) return;
    clearTimeout(state.timer);
    state.timer = setTimeout(() => sock.destroy(), timeouts.headersMs);
  };
  server.on("secureConnection", (sock: TLSSocket) => {
    if (sock.alpnProtocol === "h2") return;
    h1.set(sock, { busy: 0 });
    armHeaders(sock);
    sock.once("close", () => {
      clearTimeout(h1.get(sock)?.timer);
      h1.delete(sock);
    });
  });
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (closing) session.close();
  });
  // No traffic for idleMs: an HTTP/2 session gets GOAWAY, an HTTP/1 socket is closed.
  const onIdle = (s: http2.ServerHttp2Session | TLSSocket) => {
    if (sessions.has(s as http2.ServerHttp2Session)) {
      (s as http2.ServerHttp2Session).close(() => s.destroy());
    } else s.destroy();
  };
  server.setTimeout(timeouts.idleMs, onIdle as unknown as () => void);
  server.on("tlsClientError", (e: Error) => {
    log.debug("TLS handshake refused", { error: reason(e) });
  });
  server.on("sessionError", (e: Error) => log.debug("HTTP/2 session error", { error: reason(e) }));

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const sock = req.socket as TLSSocket;
    const state = h1.get(sock);
    if (state) {
      state.busy++;
      clearTimeout(state.timer);
    }
    const done = () => {
      if (!state) return;
      state.busy--;
      // Draining: an HTTP/1 connection closes after its last answer instead of idling on.
      if (closing && state.busy === 0) sock.end();
      else if (state.busy === 0) armHeaders(sock);
    };
    res.once("close", done);
    answerNode(req, res, handler, hostname, () => closing && Boolean(state)).catch((e) => {
      log.error("writing response failed", { error: reason(e) });
      if (!res.headersSent) res.statusCode = 500;
      res.end();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (e: Error) => log.error("listener error", { error: reason(e) }));
  const addr = server.address() as { address: string; port: number };

  let shut: Promise<void> | undefined;
  const shutdown = () =>
    shut ??= (async () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close(); // GOAWAY; open streams finish
      for (const [sock, state] of h1) if (state.busy === 0) sock.end();
      await bounded(closed, timeouts.shutdownMs, () => {
        log.warn("shutdown: gave up waiting for in-flight requests", {
          waitedMs: timeouts.shutdownMs,
        });
      });
      for (const s of sessions) s.destroy();
      for (const sock of h1.keys()) sock.destroy();
    })();
  // New handshakes use the new context; open sessions keep theirs. The whole context is
  // replaced, so the client CA is passed again (without it client certificates would fail).
  // deno-lint-ignore require-await -- async so that every failure is a rejection
  const updateCertificate = async (pem: { cert: string; key: string }) => {
    if (closing) throw certificateError("the listener is shut down");
    checkPem(pem.cert, pem.key, undefined, certificateError);
    try {
      server.setSecureContext({ cert: pem.cert, key: pem.key, ca: opts.clientCa });
    } catch (e) {
      throw certificateError(e);
    }
  };
  return listenerFor(addr.address, addr.port, "https", shutdown, updateCertificate);
}

/** HTTP/1-only headers that HTTP/2 forbids; never copied into a node response. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Runs one node request through the Web handler and writes the answer back. Request bodies are
 * not forwarded: the health routes only accept GET and HEAD, and anything else gets 405.
 */
async function answerNode(
  req: IncomingMessage,
  res: ServerResponse,
  handler: (req: Request) => Response | Promise<Response>,
  fallbackHost: string,
  lastOnConnection: () => boolean,
): Promise<void> {
  req.resume(); // discard any request body
  const method = req.method ?? "GET";
  let request: Request;
  try {
    request = new Request(requestUrl(req, fallbackHost), {
      method,
      headers: requestHeaders(req.headers),
    });
  } catch {
    res.writeHead(400, { "content-type": "text/plain; charset=utf-8" });
    res.end("bad request\n");
    return;
  }
  const response = await handler(request);
  const body = method === "HEAD" || response.body === null
    ? undefined
    : new Uint8Array(await response.arrayBuffer());
  res.statusCode = response.status;
  for (const [k, v] of response.headers) if (!HOP_BY_HOP.has(k)) res.setHeader(k, v);
  if (lastOnConnection()) res.setHeader("connection", "close");
  res.end(body);
}

/** The request's URL; the Host (or `:authority`) is used only if it looks like a host. */
function requestUrl(req: IncomingMessage, fallbackHost: string): string {
  const headers = req.headers as Record<string, string | string[] | undefined>;
  const given = headers[":authority"] ?? headers.host;
  const host = typeof given === "string" && /^[A-Za-z0-9.\-:\[\]]{1,300}$/.test(given)
    ? given
    : fallbackHost.includes(":")
    ? `[${fallbackHost}]`
    : fallbackHost;
  const target = req.url ?? "/";
  return new URL(target.startsWith("/") ? target : `/${target}`, `https://${host}`).href;
}

/** Node's header object as Web `Headers`, without HTTP/2 pseudo-headers. */
function requestHeaders(raw: IncomingMessage["headers"]): Headers {
  const headers = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith(":") || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
  }
  return headers;
}

/**
 * Checks certificate, key and CA PEM up front, so a bad file fails at start with a clear message
 * rather than at the first handshake.
 */
function checkPem(
  cert: string,
  key: string,
  ca: string | undefined,
  fail: (e: unknown) => Error,
): void {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw fail(`bad TLS certificate: ${reason(e)}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw fail(`bad TLS key: ${reason(e)}`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw fail("TLS key does not match the certificate");
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (e) {
      throw fail(`bad client CA certificate: ${reason(e)}`);
    }
  }
}

/** True for "this host has no IPv6" style errors. */
function isAddressFamilyError(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  const msg = e instanceof Error ? e.message : String(e);
  return code === "EAFNOSUPPORT" || code === "EADDRNOTAVAIL" ||
    /address family not supported|cannot assign requested address/i.test(msg);
}

/** A one-line, lower-case reason for an error, without stack or `(os error N)` noise. */
function reason(e: unknown): string {
  if (e instanceof Deno.errors.AddrInUse || (e as { code?: string })?.code === "EADDRINUSE") {
    return "address already in use";
  }
  if (e instanceof Deno.errors.AddrNotAvailable) return "address not available";
  // Deno's own message names the flag to add (--allow-net).
  if (e instanceof Deno.errors.NotCapable) return (e as Error).message.split("\n")[0];
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  const msg = e instanceof Error ? e.message : String(e);
  const first = msg.split("\n")[0].replace(/\s*\(os error \d+\)$/, "").trim();
  return first === "" ? "unknown error" : first[0].toLowerCase() + first.slice(1);
}
