/**
 * TLS for the HTTPS listener in front of Deno's HTTP engine, because Deno's own TLS server can
 * be given neither a handshake timeout nor `TCP_NODELAY`:
 *
 * - a socket accepted by `Deno.listenTls` stays open until its handshake ends, even after
 *   `close()` (Deno finishes the handshake before shutting a TLS stream down,
 *   https://github.com/denoland/deno/pull/14547), so a client that connects and never sends a
 *   ClientHello, or stops halfway, holds a descriptor and memory for as long as it likes; and
 *   Deno has no server-side `startTls` to upgrade a TCP connection accepted by `Deno.listen`;
 * - a `Deno.TlsConn` has no `setNoDelay`, and with Nagle's algorithm on, an answer written in
 *   two pieces (TLS 1.3 session tickets, then the answer) waits for the client's delayed ACK:
 *   40 ms on a tenth of new connections (measured, `deno task bench --first-byte`).
 *
 * So TLS is terminated by `node:tls` (as the mTLS listener does: `handshakeTimeout` closes
 * stalled handshakes, `setNoDelay` works, `setSecureContext` replaces the certificate without
 * rebinding the port), and each connection, once its handshake is done, is relayed in plain
 * text to Deno's HTTP engine on a loopback port ({@link Connections}, with its header and idle
 * timeouts). When `Deno.listenTls` can do both, this file can go.
 *
 * @module
 */

import tls from "node:tls";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { close, noDelay } from "./deno_connections.ts";
import type { Logger } from "./log.ts";
import { ALPN, bounded, reason } from "./listener.ts";

/** Bytes read at a time from the loopback side: a health answer fits. */
const CHUNK = 8192;

/** What the gate needs from the listener. */
export interface GateOptions {
  /** Runs an accept loop on the loopback socket, serving each connection (`Connections`). */
  accept: (socket: Deno.Listener) => void;
  handshakeMs: number;
  log: Logger;
}

/** TLS on a public port, relayed in plain text to Deno's HTTP engine on a loopback port. */
export class TlsGate {
  readonly #server: tls.Server;
  readonly #loopback: Deno.Listener;
  /** Accepted sockets whose handshake has not completed yet. */
  readonly #handshaking = new Set<Socket>();
  readonly #relays = new Set<Promise<void>>();
  readonly #handshakeMs: number;
  readonly #log: Logger;
  #closed = false;

  private constructor(
    server: tls.Server,
    loopback: Deno.Listener,
    handshakeMs: number,
    log: Logger,
  ) {
    this.#server = server;
    this.#loopback = loopback;
    this.#handshakeMs = handshakeMs;
    this.#log = log;
  }

  /** Listens on `hostname:port`; rejects when the port cannot be bound or the pair loaded. */
  static async listen(
    hostname: string,
    port: number,
    pem: { cert: string; key: string },
    opts: GateOptions,
  ): Promise<TlsGate> {
    const server = tls.createServer({
      cert: pem.cert,
      key: pem.key,
      ALPNProtocols: ALPN,
      handshakeTimeout: opts.handshakeMs,
    });
    const loopback = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const gate = new TlsGate(server, loopback, opts.handshakeMs, opts.log);
    server.on("connection", (sock: Socket) => gate.#connected(sock));
    server.on("secureConnection", (sock: TLSSocket) => gate.#relay(sock));
    server.on("tlsClientError", (e: Error) => {
      opts.log.debug("TLS handshake failed or timed out", { error: reason(e) });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, hostname, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      loopback.close();
      throw e;
    }
    server.on("error", (e: Error) => opts.log.error("listener error", { error: reason(e) }));
    opts.accept(loopback);
    return gate;
  }

  /** The bound public address. */
  get addr(): { hostname: string; port: number } {
    const a = this.#server.address() as { address: string; port: number };
    return { hostname: a.address, port: a.port };
  }

  /** New handshakes get `pem`; throws, keeping the current pair, if it cannot be loaded. */
  update(pem: { cert: string; key: string }): void {
    if (this.#closed) throw new Error("the listener is shut down");
    this.#server.setSecureContext({ cert: pem.cert, key: pem.key });
  }

  /**
   * Stops accepting, closes connections still handshaking, and waits (at most `ms`) for the
   * relays, which end when Deno's engine closes their loopback connection (the listener's
   * `Connections.shutdown`).
   */
  async close(ms: number): Promise<void> {
    this.#closed = true;
    this.#server.close();
    for (const sock of this.#handshaking) sock.destroy();
    try {
      this.#loopback.close();
    } catch { /* closed already */ }
    await bounded(Promise.all(this.#relays), ms, () => {});
  }

  #connected(sock: Socket): void {
    if (this.#closed) {
      sock.destroy();
      return;
    }
    sock.setNoDelay(true);
    this.#handshaking.add(sock);
    // node:tls's handshakeTimeout is not applied by Deno's tls.Server: timed here.
    const timer = setTimeout(() => {
      if (!this.#handshaking.has(sock)) return;
      this.#log.debug("TLS handshake not completed in time; closing the connection", {
        handshakeMs: this.#handshakeMs,
      });
      sock.destroy();
    }, this.#handshakeMs);
    sock.once("close", () => {
      clearTimeout(timer);
      this.#handshaking.delete(sock);
    });
  }

  /** Copies between the TLS socket and a new loopback connection until either ends. */
  #relay(sock: TLSSocket): void {
    const done = this.#pipe(sock).catch((e) => {
      this.#log.debug("TLS relay ended", { error: reason(e) });
    }).finally(() => this.#relays.delete(done));
    this.#relays.add(done);
  }

  async #pipe(sock: TLSSocket): Promise<void> {
    const raw = (sock as unknown as { _parent?: Socket })._parent;
    if (raw) this.#handshaking.delete(raw);
    this.#handshaking.delete(sock);
    sock.on("error", () => {}); // a reset ends the relay through "close"
    if (this.#closed) {
      sock.destroy();
      return;
    }
    sock.pause();
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port: this.#port() });
    } catch (e) {
      sock.destroy();
      throw e;
    }
    noDelay(conn);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      sock.destroy();
      close(conn);
    };
    // Client to engine: one chunk at a time (the socket pauses while a write is pending).
    sock.on("data", (chunk: Uint8Array) => {
      sock.pause();
      write(conn, chunk).then(() => sock.resume(), end);
    });
    sock.on("end", () => conn.closeWrite().catch(end)); // a half-close is passed on
    sock.on("close", end);
    sock.resume();
    // Engine to client, until the engine closes the connection.
    const buf = new Uint8Array(CHUNK);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        if (!sock.write(buf.slice(0, n)) && !ended) {
          await new Promise<void>((resolve) => {
            sock.once("drain", resolve);
            sock.once("close", resolve);
          });
        }
        if (ended) return;
      }
      sock.end(); // what is written is flushed first
      if (!ended && !sock.writableFinished) {
        await new Promise<void>((resolve) => {
          sock.once("finish", resolve);
          sock.once("close", resolve);
        });
      }
    } finally {
      end();
    }
  }

  #port(): number {
    return (this.#loopback.addr as Deno.NetAddr).port;
  }
}

/** Writes all of `bytes`. */
async function write(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await to.write(bytes.subarray(at));
}
