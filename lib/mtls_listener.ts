/**
 * The mTLS listener on `node:http2`'s secure server, because `Deno.serve` cannot request client
 * certificates: HTTP/2 and (through `allowHTTP1`) HTTP/1.1, clients without an acceptable
 * certificate (`client_cert.ts`) closed right after the handshake, and a small adapter from node
 * requests to Web `Request`s.
 *
 * @module
 */

import http2 from "node:http2";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { bounded, certificateError, checkPem, listenerFor, reason } from "./listener.ts";
import type { Handler, Listener, ListenOptions, ListenTimeouts } from "./listener.ts";
import { clientCertChecker, refusalLog } from "./client_cert.ts";

/**
 * mTLS on `node:http2`'s secure server (HTTP/2 and, through `allowHTTP1`, HTTP/1.1): a client
 * without an acceptable certificate from `clientCa` (see `client_cert.ts`) is logged and its
 * connection closed right after the handshake, before any request is read.
 */
export async function serveNode(
  hostname: string,
  port: number,
  opts: ListenOptions,
  handler: Handler,
  timeouts: ListenTimeouts,
): Promise<Listener> {
  const server = http2.createSecureServer({
    allowHTTP1: true,
    requestCert: true,
    // The certificate is checked on "secureConnection" below, so that a refusal can say why.
    rejectUnauthorized: false,
    ca: opts.clientCa,
    cert: opts.tls!.cert,
    key: opts.tls!.key,
    ALPNProtocols: ["h2", "http/1.1"],
    handshakeTimeout: timeouts.handshakeMs,
    settings: { maxConcurrentStreams: 100 },
  });
  const log = opts.logger;
  const check = await clientCertChecker(opts.clientCa!);
  // Loaded here, not imported: `listen.ts` stays importable without the import map (npm
  // `hpack.js`), as scripts outside the project import it.
  const { fillMissingAuthority } = await import("./h2_authority.ts");
  const refusals = refusalLog(log);
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
  // The server's own handler (which starts HTTP/2 or HTTP/1.1 on the socket) runs only for an
  // admitted client.
  const [serveSocket] = server.listeners("secureConnection") as ((s: TLSSocket) => void)[];
  server.removeAllListeners("secureConnection");
  const start = (sock: TLSSocket) => {
    if (sock.destroyed) return;
    if (sock.alpnProtocol !== "h2") {
      h1.set(sock, { busy: 0 });
      armHeaders(sock, timeouts.headersMs);
      sock.once("close", () => {
        clearTimeout(h1.get(sock)?.timer);
        h1.delete(sock);
      });
    } else fillMissingAuthority(sock, urlHost(hostname));
    serveSocket.call(server, sock);
  };
  // Nagle off, as on every listener (see noDelay in deno_connections.ts): node:http2 in Deno
  // leaves it on, and an answer written in pieces would wait for the client's delayed ACK.
  server.on("connection", (sock: Socket) => sock.setNoDelay(true));
  server.on("secureConnection", (sock: TLSSocket) => {
    // Verified by the TLS stack in this handshake: nothing more to check. A resumed session is
    // always checked here: Deno 2.9.3 reports it `authorized` even when the handshake that
    // issued its ticket was refused (its client then retries and would be let in).
    if (sock.authorized && !sock.isSessionReused()) return start(sock);
    check(peerChain(sock), new Date()).then((refusal) => {
      if (refusal === undefined) return start(sock);
      refusals.refused(refusal, peerName(sock));
      sock.destroy();
    }).catch((e) => {
      log.error("client certificate check failed", { error: reason(e), peer: peerName(sock) });
      sock.destroy();
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
      refusals.close();
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

/** The client's certificate chain as DER, leaf first; empty when it sent none. */
function peerChain(sock: TLSSocket): Uint8Array<ArrayBuffer>[] {
  const chain: Uint8Array<ArrayBuffer>[] = [];
  let c = sock.getPeerCertificate(true) as { raw?: Uint8Array; issuerCertificate?: unknown };
  while (c?.raw && chain.length < 8) {
    if (chain.some((d) => equalBytes(d, c.raw!))) break; // a self-signed one is its own issuer
    chain.push(new Uint8Array(c.raw));
    c = c.issuerCertificate as typeof c;
  }
  return chain;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** `address:port` of the client (IPv6 in brackets). */
function peerName(sock: TLSSocket): string {
  const addr = sock.remoteAddress ?? "unknown";
  return `${addr.includes(":") ? `[${addr}]` : addr}:${sock.remotePort ?? 0}`;
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
  handler: Handler,
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
    : urlHost(fallbackHost);
  const target = req.url ?? "/";
  return new URL(target.startsWith("/") ? target : `/${target}`, `https://${host}`).href;
}

/** A bound address as the host of a URL (IPv6 in brackets). */
function urlHost(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
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
