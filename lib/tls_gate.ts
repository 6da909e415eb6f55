/**
 * A handshake timeout for Deno's TLS server, which has none and cannot be given one: a socket
 * accepted by `Deno.listenTls` stays open until its handshake ends, even after `close()` (Deno
 * finishes the handshake before shutting a TLS stream down,
 * https://github.com/denoland/deno/pull/14547), so a client that connects and never sends a
 * ClientHello, or stops halfway, holds a descriptor and memory for as long as it likes. Deno
 * has no server-side `startTls` to upgrade a TCP connection accepted by `Deno.listen` either.
 *
 * So the public port is plain TCP, and each connection accepted there is relayed to a Deno TLS
 * listener on a loopback port. If the handshake behind it has not completed within
 * `handshakeMs`, both sockets are closed; the loopback side closing ends the stuck handshake
 * (end of file), which frees its socket too. Once the handshake is done the TLS connection is
 * served by Deno's HTTP engine as before ({@link Connections}); the relay copies bytes until
 * either side ends. A certificate update binds a new loopback listener: the public port never
 * changes hands, so no connection is refused. When `Deno.listenTls` closes stuck handshakes
 * itself, this file can go.
 *
 * @module
 */

import { close, noDelay } from "./deno_connections.ts";
import type { Logger } from "./log.ts";
import { ALPN, bounded, reason } from "./listener.ts";

/** A loopback TLS listener and the relays still handshaking through it. */
interface Back {
  readonly listener: Deno.TlsListener;
  readonly port: number;
  readonly handshaking: Set<Relay>;
  retired: boolean;
}

/** One client connection and its loopback connection to a {@link Back}. */
interface Relay {
  readonly client: Deno.Conn;
  /** Our end of the loopback connection, once the client has sent something. */
  loopback?: Deno.Conn;
  /** The loopback listener it goes to, from its first byte until its handshake is done. */
  back?: Back;
  /** Cleared once the handshake is done. */
  timer?: ReturnType<typeof setTimeout>;
  ended: boolean;
  done: Promise<void>;
}

/** Bytes read at a time: a health request or answer fits, a larger one takes several reads. */
const CHUNK = 8192;

/**
 * Relays TLS connections to Deno's TLS server on a loopback port, closing those whose handshake
 * has not completed within `handshakeMs`.
 */
export class TlsGate {
  #back: Back;
  readonly #byPort = new Map<number, Relay>();
  readonly #relays = new Set<Relay>();
  readonly #serve: (conn: Deno.TlsConn) => void;
  readonly #accept: (socket: Deno.Listener, onConn: (conn: Deno.Conn) => void) => void;
  readonly #handshakeMs: number;
  readonly #log: Logger;
  #closed = false;

  /**
   * Binds the loopback TLS listener; throws when the pair cannot be loaded. `accept` runs an
   * accept loop on a socket (the listener's, which retries when out of descriptors); `serve`
   * gets each TLS connection once its handshake is done.
   */
  constructor(
    pem: { cert: string; key: string },
    opts: {
      accept: (socket: Deno.Listener, onConn: (conn: Deno.Conn) => void) => void;
      serve: (conn: Deno.TlsConn) => void;
      handshakeMs: number;
      log: Logger;
    },
  ) {
    this.#accept = opts.accept;
    this.#serve = opts.serve;
    this.#handshakeMs = opts.handshakeMs;
    this.#log = opts.log;
    this.#back = this.#bind(pem);
  }

  /** Serves new connections with `pem`; throws, keeping the current pair, if it cannot load. */
  update(pem: { cert: string; key: string }): void {
    if (this.#closed) throw new Error("the listener is shut down");
    const old = this.#back;
    this.#back = this.#bind(pem);
    old.retired = true;
    this.#retireIfIdle(old);
  }

  /** Takes over a connection accepted on the public port. */
  relay(client: Deno.Conn): void {
    if (this.#closed) {
      close(client);
      return;
    }
    let finish!: () => void;
    const relay: Relay = {
      client,
      timer: setTimeout(() => {
        this.#log.debug("TLS handshake not completed in time; closing the connection", {
          handshakeMs: this.#handshakeMs,
        });
        this.#end(relay);
      }, this.#handshakeMs),
      ended: false,
      done: new Promise((r) => finish = r),
    };
    this.#relays.add(relay);
    this.#run(relay).finally(() => {
      this.#end(relay);
      this.#relays.delete(relay);
      finish();
    });
  }

  /**
   * Stops taking connections: closes the loopback listeners and the connections still
   * handshaking; waits (at most `ms`) for the others, which end when their TLS connection does.
   */
  async close(ms: number): Promise<void> {
    this.#closed = true;
    this.#back.retired = true;
    for (const relay of this.#relays) if (relay.timer !== undefined) this.#end(relay);
    this.#retireIfIdle(this.#back);
    await bounded(Promise.all([...this.#relays].map((r) => r.done)), ms, () => {});
  }

  #bind(pem: { cert: string; key: string }): Back {
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      alpnProtocols: ALPN,
      ...pem,
    });
    const back: Back = {
      listener,
      port: listener.addr.port,
      handshaking: new Set(),
      retired: false,
    };
    this.#accept(listener, (conn) => this.#handshake(conn as Deno.TlsConn));
    return back;
  }

  /** Closes a retired loopback listener once no relay is still on its way to it. */
  #retireIfIdle(back: Back): void {
    if (!back.retired || back.handshaking.size > 0) return;
    try {
      back.listener.close();
    } catch { /* closed already */ }
  }

  /**
   * Waits for the client's first bytes (so a silent client costs one socket and a buffer), then
   * connects to the loopback TLS listener and copies both ways until the server side ends (or
   * either side fails).
   */
  async #run(relay: Relay): Promise<void> {
    const buf = new Uint8Array(CHUNK);
    let first: number | null;
    try {
      first = await relay.client.read(buf);
    } catch {
      return; // reset, or closed by the timer
    }
    if (first === null || relay.ended) return;
    const back = relay.back = this.#back;
    back.handshaking.add(relay);
    let loopback: Deno.Conn;
    try {
      loopback = await Deno.connect({ hostname: "127.0.0.1", port: back.port });
    } catch (e) {
      this.#log.debug("TLS relay: cannot reach the TLS server", { error: reason(e) });
      return;
    }
    relay.loopback = loopback;
    if (relay.ended) { // timed out or shut down while connecting
      close(loopback);
      return;
    }
    noDelay(loopback);
    // Registered before any byte is relayed, so before the handshake can complete.
    const port = (loopback.localAddr as Deno.NetAddr).port;
    this.#byPort.set(port, relay);
    // The client may half-close after its request (passed on); the server side ending, or
    // either side failing, ends the relay.
    write(loopback, buf.subarray(0, first)).then(() => copy(relay.client, loopback, buf)).then(
      () => loopback.closeWrite().catch(() => {}),
      () => this.#end(relay),
    );
    try {
      await copy(loopback, relay.client);
    } catch {
      /* either side reset: both are closed */
    } finally {
      this.#byPort.delete(port);
    }
  }

  /** A connection accepted by the loopback TLS listener: served once its handshake is done. */
  #handshake(conn: Deno.TlsConn): void {
    conn.handshake().then(() => {
      const relay = this.#byPort.get((conn.remoteAddr as Deno.NetAddr).port);
      if (!relay || relay.ended) {
        close(conn); // not relayed by us (another local process), or timed out just now
        return;
      }
      this.#handshaken(relay);
      this.#serve(conn);
    }, (e) => {
      this.#log.debug("TLS handshake failed", { error: reason(e) });
      close(conn);
    });
  }

  #handshaken(relay: Relay): void {
    clearTimeout(relay.timer);
    relay.timer = undefined;
    if (!relay.back) return;
    relay.back.handshaking.delete(relay);
    this.#retireIfIdle(relay.back);
  }

  /** Closes both sockets of a relay (a no-op the second time). */
  #end(relay: Relay): void {
    if (relay.ended) return;
    relay.ended = true;
    this.#handshaken(relay);
    close(relay.client);
    if (relay.loopback) close(relay.loopback);
  }
}

/** Copies `from` to `to` until `from` ends; throws when either fails. */
async function copy(from: Deno.Conn, to: Deno.Conn, buf = new Uint8Array(CHUNK)): Promise<void> {
  for (;;) {
    const n = await from.read(buf);
    if (n === null) return;
    await write(to, buf.subarray(0, n));
  }
}

/** Writes all of `bytes`. */
async function write(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await to.write(bytes.subarray(at));
}
