/**
 * Listener adapters: run a `(Request) => Response` handler on a socket.
 *
 * - Plain HTTP and TLS use Deno's own HTTP engine, the one behind `Deno.serve` (HTTP/1.1 and h2c
 *   with prior knowledge on plain; ALPN `h2` and `http/1.1` with TLS), one connection at a time so
 *   that slow and idle connections can be closed ({@link ListenTimeouts}).
 * - mTLS (client certificates required) uses `node:http2`'s secure server, because `Deno.serve`
 *   cannot request client certificates; a small adapter turns its requests into Web `Request`s.
 *
 * A TLS listener's certificate can be replaced while it runs ({@link Listener.updateCertificate}):
 * `node:http2` swaps its secure context; a Deno TLS socket cannot, so a second socket with the new
 * certificate is bound to the same port (`SO_REUSEPORT`, which Deno only allows with
 * `--unstable-net`) and the old one closed; without `--unstable-net` the old socket is closed and
 * the port bound again, refusing new connections for a few milliseconds. Open connections finish
 * undisturbed either way.
 *
 * @module
 */

import http2 from "node:http2";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { parseListenAddr } from "./address.ts";
import { errorLine, type Logger } from "./log.ts";
import { tlsMaterialProblem } from "./tls_material.ts";

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
  handler: (req: Request) => Promise<Response> | Response;
  /** PEM contents of the server certificate (chain) and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** PEM of the CA that signs client certificates; when set, they are required (mTLS). */
  clientCa?: string;
  logger: Logger;
  /** Overrides for {@link defaultTimeouts}. */
  timeouts?: Partial<ListenTimeouts>;
  /**
   * HTTPS (not mTLS) only: bind with `SO_REUSEPORT`, so that {@link Listener.updateCertificate}
   * can start the new server before the old one stops (no connection is refused). Deno allows it
   * only with `--unstable-net` (and exits the process when it is asked for without), so the
   * default is {@link canReusePort}(); `true` without `--unstable-net` is a listen error;
   * `false` makes certificate updates close and bind the port again.
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

/**
 * Deno's HTTP server engine (the one behind `Deno.serve`) run on a single accepted connection:
 * `Deno[Deno.internal].serveHttpOnConnection`. Serving connection by connection is what lets the
 * listener close a connection that is slow or idle, which `Deno.serve` cannot be told to do.
 * It is an internal API (present in Deno 2.9.3, the pinned version; a test fails if it goes away),
 * so the listener falls back to `Deno.serve`, without those timeouts, when it is missing.
 */
type ServeOnConnection = (
  conn: Deno.Conn,
  /** Only its `addEventListener("abort", ...)` is used: the listener cancels the connection. */
  signal: AbortSignal,
  handler: (req: Request) => Response | Promise<Response>,
  onError: (e: unknown) => Response,
  onListen: () => void,
) => { finished: Promise<void>; shutdown(): Promise<void> };

const serveOnConnection: ServeOnConnection | undefined = (() => {
  const deno = Deno as unknown as Record<symbol, Record<string, unknown> | undefined> & {
    internal?: symbol;
  };
  const serve = deno.internal === undefined
    ? undefined
    : deno[deno.internal]?.serveHttpOnConnection;
  return typeof serve === "function" ? serve as ServeOnConnection : undefined;
})();

/**
 * Whether the running Deno lets the plain and HTTPS listeners enforce
 * {@link ListenTimeouts.headersMs} and {@link ListenTimeouts.idleMs} (see `serveOnConnection`).
 */
export const connectionTimeoutsSupported: boolean = serveOnConnection !== undefined;

/** One bound socket of a plain or HTTPS listener; a certificate update replaces it. */
interface Front {
  readonly addr: Deno.NetAddr;
  /** Stops accepting on this socket; resolves when what it alone must finish has finished. */
  retire(why: string): Promise<void>;
}

/**
 * Plain HTTP or TLS, on Deno's HTTP engine. Throws synchronously on bind or certificate errors.
 *
 * Connections are accepted here and served one by one ({@link Connections}), so a connection that
 * does not finish its TLS handshake within `handshakeMs`, sends no request within `headersMs`
 * (of connecting or of the handshake) or none within `idleMs` of its last answer is closed.
 * (Deno's TLS closes a socket only once its handshake has ended, so a client stuck mid-handshake
 * keeps its socket until it leaves.) Without `serveOnConnection` (or with `opts.denoServe`),
 * `Deno.serve` runs the socket and there are no such timeouts: a silent or dripping client then
 * holds only its own connection (measured: open after 150 s).
 */
function serveDeno(
  hostname: string,
  port: number,
  opts: ListenOptions,
  handler: (req: Request) => Response | Promise<Response>,
  timeouts: ListenTimeouts,
): Listener {
  const log = opts.logger;
  const onError = (e: unknown) => {
    log.error("request failed", { error: reason(e) });
    return new Response("internal error\n", { status: 500 });
  };
  const reusePort = Boolean(opts.tls) && (opts.reusePort ?? canReusePort());
  const perConnection = opts.denoServe ? undefined : serveOnConnection;
  const connections = perConnection
    ? new Connections(perConnection, handler, onError, timeouts, log)
    : undefined;
  if (!perConnection && !opts.denoServe) {
    log.warn(
      "this Deno cannot serve connection by connection: slow and idle clients are not timed out",
      { deno: Deno.version.deno },
    );
  }

  const bind = (pem: { cert: string; key: string } | undefined, host: string, p: number): Front => {
    if (connections) {
      const socket = pem
        ? Deno.listenTls({ hostname: host, port: p, reusePort, alpnProtocols: ALPN, ...pem })
        : Deno.listen({ hostname: host, port: p });
      connections.accept(socket);
      return {
        addr: socket.addr,
        retire() {
          try {
            socket.close();
          } catch { /* already closed */ }
          return Promise.resolve(); // its connections are drained with the others on shutdown
        },
      };
    }
    const server = Deno.serve({
      onListen() {}, // no "Listening on" line on stdout; serveHealth logs instead
      onError,
      hostname: host,
      port: p,
      ...(pem ? { reusePort, ...pem } : {}),
    }, handler);
    return {
      addr: server.addr as Deno.NetAddr,
      retire: (why) => drain(server.shutdown(), timeouts.shutdownMs, log, why),
    };
  };
  const drainConnections = () => connections?.shutdown() ?? Promise.resolve();

  if (!opts.tls) {
    const front = bind(undefined, hostname, port);
    let closing: Promise<void> | undefined;
    return listenerFor(
      front.addr.hostname,
      front.addr.port,
      "http",
      () => closing ??= front.retire("shutdown").then(drainConnections),
      () => Promise.reject(certificateError("a plain HTTP listener has no certificate")),
    );
  }

  if (reusePort) {
    // SO_REUSEPORT would also let a second copy of this program share the port without a word;
    // an ordinary bind first keeps "address already in use" for that mistake.
    const probe = Deno.listen({ hostname, port });
    ({ hostname, port } = probe.addr);
    probe.close();
  }
  let current: Front | undefined = bind(opts.tls, hostname, port);
  let pem = opts.tls;
  const bound = current.addr;
  const draining = new Set<Promise<void>>();
  const retire = (front: Front, why: string) => {
    const done = front.retire(why);
    draining.add(done);
    done.then(() => draining.delete(done));
    return done;
  };

  // With SO_REUSEPORT: bind the new socket, then close the old one (the kernel spreads new
  // connections over both until the old one closes). Without: close the old one and bind again.
  // Either way connections already open finish undisturbed.
  const swap = async (next: { cert: string; key: string }) => {
    if (reusePort) {
      const old = current;
      current = bind(next, bound.hostname, bound.port); // throws on a bad pair: old kept
      pem = next;
      if (old) retire(old, "certificate update");
      return;
    }
    // The old socket goes before the new one exists, so prove the pair loads first (when net
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
      current = await rebind(() => bind(next, bound.hostname, bound.port));
      pem = next;
    } catch (e) {
      try {
        current = await rebind(() => bind(pem, bound.hostname, bound.port));
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
        await drainConnections();
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

/** ALPN protocols of the HTTPS listeners, preferred first. */
const ALPN = ["h2", "http/1.1"];

/** The `updateCertificate` error for an unusable pair. */
const certificateError = (e: unknown) => new Error(`certificate not replaced: ${reason(e)}`);

/** Binds again (the old socket closes asynchronously), retrying "in use" for up to 1 s. */
async function rebind(bind: () => Front): Promise<Front> {
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

/** Waits at most `ms` for a graceful shutdown's in-flight requests. */
function drain(shutdown: Promise<unknown>, ms: number, log: Logger, why: string): Promise<void> {
  return bounded(shutdown, ms, () => {
    log.warn(`${why}: gave up waiting for in-flight requests`, { waitedMs: ms });
  });
}

/** Accept failures (such as running out of file descriptors) are logged at most this often. */
const ACCEPT_REPORT_MS = 10_000;

/** One connection served by {@link Connections}. */
interface Connection {
  /** Requests being answered. */
  busy: number;
  /** When (on the coarse clock) it is closed unless a request is being answered. */
  deadline: number;
  /** Closes it at once; a no-op once it has ended or is shutting down gracefully. */
  cancel(): void;
  /** Set once a graceful shutdown has begun: it ends by itself, and `cancel` cannot act. */
  draining: boolean;
  server?: { finished: Promise<void>; shutdown(): Promise<void> };
}

/**
 * The connections of one plain or HTTPS listener (all its sockets, across certificate updates),
 * each served by Deno's HTTP engine on its own. One timer closes those that have nothing in
 * flight and are past their deadline: `headersMs` after connecting, then `idleMs` after each
 * answer. A request costs two counter updates and a read of a clock that the timer advances, so
 * the timeouts do not slow answers down (measured with `deno task bench`).
 */
class Connections {
  readonly #open = new Set<Connection>();
  readonly #handshaking = new Set<Deno.TlsConn>();
  readonly #serve: ServeOnConnection;
  readonly #handler: (req: Request) => Response | Promise<Response>;
  readonly #onError: (e: unknown) => Response;
  readonly #timeouts: ListenTimeouts;
  readonly #log: Logger;
  readonly #sweeper: ReturnType<typeof setTimeout>;
  /** A millisecond clock advanced by the sweeper; deadlines are accurate to one tick. */
  #now = performance.now();
  #closing = false;

  constructor(
    serve: ServeOnConnection,
    handler: (req: Request) => Response | Promise<Response>,
    onError: (e: unknown) => Response,
    timeouts: ListenTimeouts,
    log: Logger,
  ) {
    this.#serve = serve;
    this.#handler = handler;
    this.#onError = onError;
    this.#timeouts = timeouts;
    this.#log = log;
    // A tenth of the shorter timeout, between 10 ms and 1 s: deadlines hold within 10%.
    const tick = Math.min(1000, Math.max(10, Math.min(timeouts.headersMs, timeouts.idleMs) / 10));
    this.#sweeper = setInterval(() => this.#sweep(), tick);
    Deno.unrefTimer(this.#sweeper); // the sockets, not this timer, keep the process alive
  }

  /** Accepts connections on `socket` until it is closed. */
  async accept(socket: Deno.Listener): Promise<void> {
    let backoff = 0;
    let failures = 0;
    let reported = -Infinity;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await socket.accept();
        backoff = 0;
      } catch (e) {
        if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
        // Out of file descriptors and the like: wait rather than spin (as Go's net/http does),
        // and say so at most every 10 s however often it happens.
        backoff = Math.min(1000, backoff === 0 ? 5 : backoff * 2);
        failures++;
        if (performance.now() - reported >= ACCEPT_REPORT_MS) {
          reported = performance.now();
          this.#log.error("cannot accept connections; retrying", { error: reason(e), failures });
          failures = 0;
        }
        await new Promise((r) => setTimeout(r, backoff));
        continue;
      }
      if ("handshake" in conn) this.#handshake(conn as Deno.TlsConn);
      else this.#add(conn);
    }
  }

  /**
   * Serves `conn` once its TLS handshake is done, or closes it after `handshakeMs`, so that the
   * first-request deadline counts from the handshake. (Deno 2.9.3 keeps the socket itself open
   * until the handshake ends even after `close()`: README "Threat model".)
   */
  async #handshake(conn: Deno.TlsConn): Promise<void> {
    this.#handshaking.add(conn);
    const timer = setTimeout(() => close(conn), this.#timeouts.handshakeMs);
    try {
      await conn.handshake();
    } catch (e) {
      this.#log.debug("TLS handshake failed", { error: reason(e) });
      close(conn);
      return;
    } finally {
      clearTimeout(timer);
      this.#handshaking.delete(conn);
    }
    this.#add(conn);
  }

  #add(conn: Deno.Conn): void {
    if (this.#closing) {
      close(conn);
      return;
    }
    // The engine cancels a connection from its signal's "abort" listener, which throws (and,
    // thrown from an event listener, would end the process) once the connection has ended. Deno
    // only calls addEventListener on it, so keep the listener and call it where a throw is caught.
    let onAbort: (() => void) | undefined;
    const signal = {
      addEventListener: (_type: string, listener: () => void) => onAbort = listener,
    } as unknown as AbortSignal;
    const c: Connection = {
      busy: 0,
      deadline: this.#now + this.#timeouts.headersMs,
      draining: false,
      cancel() {
        if (c.draining) return;
        try {
          onAbort?.();
        } catch { /* it has just ended */ }
      },
    };
    const idleMs = this.#timeouts.idleMs;
    const handler = this.#handler;
    const answered = () => {
      c.busy--;
      c.deadline = this.#now + idleMs;
    };
    const counted = (req: Request) => {
      c.busy++;
      const res = handler(req); // guarded: never throws, never rejects
      if (res instanceof Response) {
        answered();
        return res;
      }
      return res.then((r) => {
        answered();
        return r;
      });
    };
    try {
      c.server = this.#serve(conn, signal, counted, this.#onError, () => {});
    } catch (e) {
      this.#log.debug("connection not served", { error: reason(e) });
      close(conn);
      return;
    }
    this.#open.add(c);
    // A client that goes away mid-handshake or mid-request ends its connection with an error.
    c.server.finished.catch((e) => this.#log.debug("connection ended", { error: reason(e) }))
      .finally(() => this.#open.delete(c));
  }

  #sweep(): void {
    const now = this.#now = performance.now();
    for (const c of this.#open) {
      if (c.busy === 0 && now > c.deadline && !c.draining) {
        this.#log.debug("closing a slow or idle connection", {});
        c.cancel();
        this.#open.delete(c);
      }
    }
  }

  /**
   * Closes every connection: idle ones at once, those with requests in flight after their answers
   * (HTTP/2 with GOAWAY). Waits at most `shutdownMs` for them. The sockets must be closed first.
   */
  async shutdown(): Promise<void> {
    this.#closing = true;
    for (const conn of this.#handshaking) close(conn);
    const finished: Promise<unknown>[] = [];
    for (const c of this.#open) {
      if (c.busy === 0) {
        c.cancel();
        continue;
      }
      c.draining = true;
      c.server?.shutdown().catch(() => {});
      finished.push(c.server!.finished.catch(() => {}));
    }
    await drain(Promise.all(finished), this.#timeouts.shutdownMs, this.#log, "shutdown");
    clearInterval(this.#sweeper);
  }
}

/** Closes a connection that may already be closed. */
function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
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

  // An HTTP/1 socket must send its first request within headersMs, and each next one within
  // idleMs of the last answer (Deno's node:http2 does not apply `headersTimeout` to HTTP/1
  // connections, so a slowloris client is timed out here).
  const armHeaders = (sock: TLSSocket, ms: number) => {
    const state = h1.get(sock);
    if (!state) return;
    clearTimeout(state.timer);
    state.timer = setTimeout(() => sock.destroy(), ms);
  };
  server.on("secureConnection", (sock: TLSSocket) => {
    if (sock.alpnProtocol === "h2") return;
    h1.set(sock, { busy: 0 });
    armHeaders(sock, timeouts.headersMs);
    sock.once("close", () => {
      clearTimeout(h1.get(sock)?.timer);
      h1.delete(sock);
    });
  });
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    // Like HTTP/1: the first request within headersMs.
    const first = setTimeout(() => session.destroy(), timeouts.headersMs);
    session.once("stream", () => clearTimeout(first));
    session.once("close", () => {
      clearTimeout(first);
      sessions.delete(session);
    });
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
      else if (state.busy === 0) armHeaders(sock, timeouts.idleMs);
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

/** How the listeners name the parts of their TLS material in messages. */
const LISTENER_TLS_NAMES = { cert: "TLS certificate", key: "TLS key", ca: "client CA certificate" };

/** Throws `fail(problem)` when the certificate, key or CA cannot be used. */
function checkPem(
  cert: string,
  key: string,
  ca: string | undefined,
  fail: (e: unknown) => Error,
): void {
  const problem = tlsMaterialProblem({ cert, key, ca }, LISTENER_TLS_NAMES);
  if (problem) throw fail(problem);
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
  if (e instanceof Deno.errors.NotCapable) return errorLine(e);
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  const first = errorLine(e);
  return first[0].toLowerCase() + first.slice(1);
}
