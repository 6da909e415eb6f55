/**
 * The one file that uses a Deno internal: `Deno[Deno.internal].serveHttpOnConnection`, Deno's
 * HTTP engine (the one behind `Deno.serve`) run on one accepted connection. Serving connection
 * by connection is what lets the listener close a connection that is slow or idle: `Deno.serve`
 * takes no header-read or idle timeout and accepts its own connections
 * (https://github.com/denoland/deno/issues/3515, read/write timeouts;
 * https://github.com/denoland/deno/issues/32497 and its fix in progress,
 * https://github.com/denoland/deno/pull/34172, a keep-alive timeout for HTTP/1.1 only). When
 * `Deno.serve` can bound header, idle and handshake time itself, this file can go.
 *
 * @module
 */

import type { Logger } from "./log.ts";
import { drain, type Handler, type ListenTimeouts, reason } from "./listener.ts";

/**
 * Deno's HTTP server engine (the one behind `Deno.serve`) run on a single accepted connection:
 * `Deno[Deno.internal].serveHttpOnConnection`. Serving connection by connection is what lets the
 * listener close a connection that is slow or idle, which `Deno.serve` cannot be told to do.
 * It is an internal API (present in Deno 2.9.3, the pinned version; a test fails if it goes away),
 * so the listener falls back to `Deno.serve`, without those timeouts, when it is missing.
 */
export type ServeOnConnection = (
  conn: Deno.Conn,
  /** Only its `addEventListener("abort", ...)` is used: the listener cancels the connection. */
  signal: AbortSignal,
  handler: Handler,
  onError: (e: unknown) => Response,
  onListen: () => void,
) => { finished: Promise<void>; shutdown(): Promise<void> };

export const serveOnConnection: ServeOnConnection | undefined = (() => {
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
export class Connections {
  readonly #open = new Set<Connection>();
  readonly #serve: ServeOnConnection;
  readonly #handler: Handler;
  readonly #onError: (e: unknown) => Response;
  readonly #timeouts: ListenTimeouts;
  readonly #log: Logger;
  readonly #sweeper: ReturnType<typeof setTimeout>;
  /** A millisecond clock advanced by the sweeper; deadlines are accurate to one tick. */
  #now = performance.now();
  #closing = false;

  constructor(
    serve: ServeOnConnection,
    handler: Handler,
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

  /**
   * Accepts connections on `socket` until it is closed, handing each to `onConn` (by default
   * served here). Accept failures (out of file descriptors and the like) are retried.
   */
  async accept(
    socket: Deno.Listener,
    onConn: (conn: Deno.Conn) => void = (conn) => this.serve(conn),
  ): Promise<void> {
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
      noDelay(conn);
      onConn(conn);
    }
  }

  /**
   * Serves `conn` (plain TCP, or TLS with its handshake done: the first-request deadline counts
   * from now) until it ends or is timed out.
   */
  serve(conn: Deno.Conn): void {
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

/**
 * Turns Nagle's algorithm off on a TCP connection (a no-op for others): an answer is written in
 * a few small pieces (TLS 1.3 session tickets, HTTP/2 frames), and with Nagle a piece waits for
 * the ACK of the one before, which the client delays by up to 40 ms. Deno's engine sets it on
 * plain connections by itself; set here on every accepted connection so that no listener depends
 * on that. Measured on new connections: `deno task bench --first-byte`, docs/performance.md.
 */
export function noDelay(conn: Deno.Conn): void {
  try {
    (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
  } catch { /* closed already */ }
}

/** Closes a connection that may already be closed. */
export function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}
