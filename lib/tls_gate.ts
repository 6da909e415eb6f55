/**
 * TLS for the HTTPS and mTLS listeners in front of Deno's HTTP engine, because Deno's own TLS
 * server can be given neither a handshake timeout nor `TCP_NODELAY`, nor asked for client
 * certificates:
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
 * So TLS is terminated by `node:tls`: its sockets take `setNoDelay`, `createSecureContext` gives
 * new handshakes a new certificate on the same port, and `requestCert` asks for a client
 * certificate, which `client_cert.ts` judges before a single byte is relayed. (The mTLS listener
 * used to be `node:http2`'s secure server, whose sessions Deno 2.9.3 never frees: ~40 KB per
 * connection, kept until restart; through the gate, 12,000 mTLS connections leave ~19 MB.)
 * Connections are still accepted by `Deno.listen` (through the listener's accept loop, which
 * retries when out of descriptors, where Deno's node:net server stops accepting for good) and
 * handed to `node:tls` through Deno's node TCP handle (`openFromRid`, see `socketAdopter`); the
 * handshake timer closes the Deno connection, which frees the descriptor even mid-handshake.
 * Once the handshake is done, each connection is relayed in plain text to Deno's HTTP engine on
 * a loopback port (with the listener's header and idle timeouts). When `Deno.listenTls` can do
 * all three, this file can go.
 *
 * @module
 */

import net, { type Socket } from "node:net";
import tls from "node:tls";
import type { TLSSocket } from "node:tls";
import { close, noDelay } from "./deno_connections.ts";
import type { Logger } from "./log.ts";
import { ALPN, bounded, reason } from "./listener.ts";

/** Bytes read at a time from the loopback side: a health answer fits. */
const CHUNK = 8192;

/** What the gate needs from the listener. */
export interface GateOptions {
  /**
   * Runs an accept loop on the public socket (retrying when out of descriptors), handing each
   * connection to `onConn`. Without it, node's TLS server accepts.
   */
  accept?: (socket: Deno.Listener, onConn: (conn: Deno.Conn) => void) => void;
  /** The loopback port of Deno's HTTP engine, where admitted connections are relayed. */
  enginePort: number;
  handshakeMs: number;
  log: Logger;
  /**
   * mTLS: the CA whose client certificates are asked for; `admit` says, once the handshake is
   * done, whether the client may send requests (a refused one is closed).
   */
  client?: { ca: string; admit(sock: TLSSocket): Promise<boolean> };
}

/** TLS on a public port, relayed in plain text to Deno's HTTP engine on a loopback port. */
export class TlsGate {
  /** The certificate for new handshakes. */
  #context: tls.SecureContext;
  /** Accepting node's way, when sockets cannot be adopted ({@link socketAdopter}). */
  readonly #server?: tls.Server;
  /** The public socket, accepted here (when sockets can be adopted). */
  readonly #front?: Deno.Listener;
  readonly #enginePort: number;
  readonly #client: GateOptions["client"];
  /** Connections whose handshake is not done yet, and how to close each. */
  readonly #handshaking = new Map<object, () => void>();
  readonly #relays = new Set<Promise<void>>();
  readonly #handshakeMs: number;
  readonly #log: Logger;
  #closed = false;

  private constructor(
    context: tls.SecureContext,
    bound: { server?: tls.Server; front?: Deno.Listener },
    opts: GateOptions,
  ) {
    this.#context = context;
    this.#server = bound.server;
    this.#front = bound.front;
    this.#enginePort = opts.enginePort;
    this.#client = opts.client;
    this.#handshakeMs = opts.handshakeMs;
    this.#log = opts.log;
  }

  /** Listens on `hostname:port`; rejects when the port cannot be bound or the pair loaded. */
  static async listen(
    hostname: string,
    port: number,
    pem: { cert: string; key: string },
    opts: GateOptions,
  ): Promise<TlsGate> {
    const options = secureOptions(pem, opts.client);
    const context = tls.createSecureContext(options);
    const adopt = opts.accept ? await socketAdopter() : undefined;
    let front: Deno.Listener | undefined;
    let server: tls.Server | undefined;
    if (adopt) front = Deno.listen({ hostname, port });
    else {
      server = tls.createServer({ ...options, ALPNProtocols: ALPN });
      await listenNode(server, hostname, port);
    }
    const gate = new TlsGate(context, { server, front }, opts);
    if (front && adopt) opts.accept!(front, (conn) => gate.#adopt(conn, adopt));
    if (server) {
      server.on("connection", (raw: Socket) => {
        raw.setNoDelay(true);
        gate.#timeHandshake(raw, () => raw.destroy());
      });
      server.on("secureConnection", (sock: TLSSocket) => {
        gate.#handshaken((sock as unknown as { _parent?: Socket })._parent ?? sock);
        gate.#admitThenRelay(sock, () => sock.destroy());
      });
      server.on("tlsClientError", (e: Error) => {
        opts.log.debug("TLS handshake failed", { error: reason(e) });
      });
      server.on("error", (e: Error) => opts.log.error("listener error", { error: reason(e) }));
    }
    return gate;
  }

  /** The bound public address. */
  get addr(): { hostname: string; port: number } {
    if (this.#front) return this.#front.addr as Deno.NetAddr;
    const a = this.#server!.address() as { address: string; port: number };
    return { hostname: a.address, port: a.port };
  }

  /** New handshakes get `pem`; throws, keeping the current pair, if it cannot be loaded. */
  update(pem: { cert: string; key: string }): void {
    if (this.#closed) throw new Error("the listener is shut down");
    const options = secureOptions(pem, this.#client);
    const context = tls.createSecureContext(options);
    this.#server?.setSecureContext(options);
    this.#context = context;
  }

  /**
   * Stops accepting, closes connections still handshaking, and waits (at most `ms`) for the
   * relays, which end when Deno's engine closes their loopback connection (the listener's
   * shutdown).
   */
  async close(ms: number): Promise<void> {
    this.#closed = true;
    try {
      this.#front?.close();
    } catch { /* closed already */ }
    this.#server?.close();
    for (const kill of [...this.#handshaking.values()]) kill();
    await bounded(Promise.all(this.#relays), ms, () => {});
  }

  /**
   * A TCP connection accepted here: TLS through node:tls on it. Closing the Deno connection is
   * what frees its descriptor (destroying the node socket does not, while a read is pending).
   */
  #adopt(conn: Deno.Conn, adopt: Adopt): void {
    const raw = this.#closed ? undefined : adopt(conn);
    if (!raw) {
      this.#log.debug("TLS: connection not taken over; closed", {});
      close(conn);
      return;
    }
    const sock = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: this.#context,
      ALPNProtocols: ALPN,
      // Asked for, not enforced by the TLS stack: `admit` decides, so a refusal can say why.
      ...(this.#client ? { requestCert: true, rejectUnauthorized: false } : {}),
    } as tls.TLSSocketOptions);
    const release = () => {
      sock.destroy();
      close(conn);
    };
    sock.on("error", (e: Error) => this.#log.debug("TLS connection failed", { error: reason(e) }));
    sock.once("close", release);
    this.#timeHandshake(sock, release);
    sock.once("secure", () => {
      this.#handshaken(sock);
      this.#admitThenRelay(sock, release);
    });
  }

  /** Relays an admitted client (any client without mTLS); closes a refused one. */
  #admitThenRelay(sock: TLSSocket, release: () => void): void {
    if (!this.#client) return this.#relay(sock, release);
    this.#client.admit(sock).then((admitted) => {
      if (admitted && !this.#closed && !sock.destroyed) this.#relay(sock, release);
      else release();
    }, release);
  }

  /** Closes `key`'s connection with `kill` unless its handshake is done within handshakeMs. */
  #timeHandshake(key: object, kill: () => void): void {
    if (this.#closed) {
      kill();
      return;
    }
    const timer = setTimeout(() => {
      if (!this.#handshaking.has(key)) return;
      this.#log.debug("TLS handshake not completed in time; closing the connection", {
        handshakeMs: this.#handshakeMs,
      });
      kill();
    }, this.#handshakeMs);
    this.#handshaking.set(key, () => {
      clearTimeout(timer);
      this.#handshaking.delete(key);
      kill();
    });
    (key as Socket).once("close", () => {
      clearTimeout(timer);
      this.#handshaking.delete(key);
    });
  }

  #handshaken(key: object): void {
    this.#handshaking.delete(key);
  }

  /** Copies between the TLS socket and a new loopback connection until either ends. */
  #relay(sock: TLSSocket, release: () => void): void {
    const done = this.#pipe(sock).catch((e) => {
      this.#log.debug("TLS relay ended", { error: reason(e) });
    }).finally(() => {
      release();
      this.#relays.delete(done);
    });
    this.#relays.add(done);
  }

  async #pipe(sock: TLSSocket): Promise<void> {
    sock.on("error", () => {}); // a reset ends the relay through "close"
    if (this.#closed) {
      sock.destroy();
      return;
    }
    sock.pause();
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port: this.#enginePort });
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
}

/** The secure context's options: the pair, and for mTLS the CA asked for client certificates. */
function secureOptions(
  pem: { cert: string; key: string },
  client: GateOptions["client"],
): tls.SecureContextOptions & { requestCert?: boolean; rejectUnauthorized?: boolean } {
  return client
    ? { cert: pem.cert, key: pem.key, ca: client.ca, requestCert: true, rejectUnauthorized: false }
    : { cert: pem.cert, key: pem.key };
}

/** Binds node's server itself (when sockets cannot be adopted). */
function listenNode(server: tls.Server, hostname: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

type Adopt = (conn: Deno.Conn) => Socket | undefined;
let adopter: Promise<Adopt | undefined> | undefined;

/**
 * Turns a TCP connection accepted by `Deno.listen` into a `node:net` socket for the TLS server,
 * through the `openFromRid` of Deno's node TCP handle (Deno 2.9.3). Accepting in Deno keeps the
 * listener's retry when out of descriptors: Deno's node:net server stops accepting for good
 * after running out (measured: no answer after a 120-connection flood with `ulimit -n 60`).
 * Undefined when this Deno lacks it; node's server then accepts itself.
 */
function socketAdopter(): Promise<Adopt | undefined> {
  return adopter ??= (async () => {
    try {
      // The handle class is reachable only through a bound server's handle.
      const probe = net.createServer();
      await listenNode(probe as unknown as tls.Server, "127.0.0.1", 0);
      const Handle = (probe as unknown as { _handle?: { constructor: HandleClass } })._handle
        ?.constructor;
      probe.close();
      if (typeof Handle?.prototype?.openFromRid !== "function") return undefined;
      return (conn: Deno.Conn) => {
        const key = Object.getOwnPropertySymbols(conn)
          .find((s) => s.description === "Deno.internal.rid");
        const rid = key && (conn as unknown as Record<symbol, unknown>)[key];
        if (typeof rid !== "number") return undefined;
        try {
          const handle = new Handle(0); // 0: a connected socket, not a server
          if (handle.openFromRid(rid) !== 0) return undefined;
          return new net.Socket(
            { handle } as unknown as ConstructorParameters<typeof net.Socket>[0],
          );
        } catch {
          return undefined; // out of descriptors and the like: the connection is closed
        }
      };
    } catch {
      return undefined;
    }
  })();
}

/** The part of Deno's node TCP handle used here. */
type HandleClass = {
  new (type: number): { openFromRid(rid: number): number };
  prototype?: { openFromRid?: unknown };
};

/** Writes all of `bytes`. */
async function write(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await to.write(bytes.subarray(at));
}
