/**
 * Plain HTTP, HTTPS and mTLS listeners on Deno's own HTTP engine (HTTP/1.1 and h2c with prior
 * knowledge on plain; ALPN `h2` and `http/1.1` with TLS), connection by connection through
 * {@link Connections} so slow and idle clients are closed (HTTPS and mTLS through a
 * {@link TlsGate}, which closes stalled handshakes, admits mTLS clients by their certificate and
 * takes certificate updates without rebinding the port), or on `Deno.serve` without those
 * timeouts when the running Deno cannot (mTLS then still goes through the gate). There, a TLS certificate is
 * replaced by binding a second socket with the new certificate to the same port (`SO_REUSEPORT`,
 * only with `--unstable-net`), or else by closing and binding the port again.
 *
 * @module
 */

import { Connections, serveOnConnection } from "./deno_connections.ts";
import { TlsGate } from "./tls_gate.ts";
import { clientAdmission } from "./client_cert.ts";
import {
  canReusePort,
  certificateError,
  checkPem,
  drain,
  listenerFor,
  reason,
} from "./listener.ts";
import type { Handler, Listener, ListenOptions, ListenTimeouts } from "./listener.ts";
import type { Logger } from "./log.ts";

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
 * does not finish its TLS handshake within `handshakeMs` ({@link TlsGate}), sends no request
 * within `headersMs` (of connecting or of the handshake) or none within `idleMs` of its last
 * answer is closed. Without `serveOnConnection` (or with `opts.denoServe`), `Deno.serve` runs
 * the socket and there are no such timeouts: a silent, dripping or handshake-stalling client then
 * holds its connection (measured: open after 150 s).
 */
export function serveDeno(
  hostname: string,
  port: number,
  opts: ListenOptions,
  handler: Handler,
  timeouts: ListenTimeouts,
): Listener | Promise<Listener> {
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

  if (opts.tls && (connections || opts.clientCa)) {
    const engine = connections
      ? connectionEngine(connections)
      : serveEngine(handler, onError, timeouts, log);
    return serveGated(hostname, port, opts, engine, timeouts);
  }

  const bind = (pem: { cert: string; key: string } | undefined, host: string, p: number): Front => {
    if (connections) {
      const socket = Deno.listen({ hostname: host, port: p });
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

/** Deno's HTTP engine on a loopback port, behind a {@link TlsGate}. */
interface Engine {
  port: number;
  /** The accept loop for the public socket (absent: node's TLS server accepts). */
  accept?: (socket: Deno.Listener, onConn: (conn: Deno.Conn) => void) => void;
  shutdown(): Promise<void>;
}

/** The engine connection by connection ({@link Connections}, with its timeouts). */
function connectionEngine(connections: Connections): Engine {
  const loopback = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  connections.accept(loopback);
  return {
    port: (loopback.addr as Deno.NetAddr).port,
    accept: (socket, onConn) => void connections.accept(socket, onConn),
    shutdown() {
      try {
        loopback.close();
      } catch { /* closed already */ }
      return connections.shutdown();
    },
  };
}

/** The engine through `Deno.serve`, for a Deno that cannot serve connection by connection. */
function serveEngine(
  handler: Handler,
  onError: (e: unknown) => Response,
  timeouts: ListenTimeouts,
  log: Logger,
): Engine {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {}, onError }, handler);
  return {
    port: (server.addr as Deno.NetAddr).port,
    shutdown: () => drain(server.shutdown(), timeouts.shutdownMs, log, "shutdown"),
  };
}

/**
 * HTTPS and mTLS: TLS terminated by a {@link TlsGate} (which closes stalled handshakes, admits
 * mTLS clients by their certificate and takes certificate updates on the same socket), relayed
 * to Deno's engine.
 */
async function serveGated(
  hostname: string,
  port: number,
  opts: ListenOptions,
  engine: Engine,
  timeouts: ListenTimeouts,
): Promise<Listener> {
  const log = opts.logger;
  const admission = opts.clientCa ? await clientAdmission(opts.clientCa, log) : undefined;
  let gate: TlsGate;
  try {
    gate = await TlsGate.listen(hostname, port, opts.tls!, {
      accept: engine.accept,
      enginePort: engine.port,
      handshakeMs: timeouts.handshakeMs,
      log,
      client: admission && { ca: opts.clientCa!, admit: admission.admit },
    });
  } catch (e) {
    await engine.shutdown();
    admission?.close();
    throw e;
  }
  let closing: Promise<void> | undefined;
  return listenerFor(
    gate.addr.hostname,
    gate.addr.port,
    "https",
    () =>
      closing ??= Promise.all([gate.close(timeouts.shutdownMs), engine.shutdown()])
        .then(() => admission?.close()),
    // deno-lint-ignore require-await -- async so that every failure is a rejection
    async (next) => {
      if (closing) throw certificateError("the listener is shut down");
      checkPem(next.cert, next.key, undefined, certificateError);
      try {
        gate.update(next);
      } catch (e) {
        throw certificateError(e);
      }
    },
  );
}

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
