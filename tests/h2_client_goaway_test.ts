/**
 * An HTTP/2 client that sends GOAWAY right after its request (as some raw-frame clients and
 * proxies draining a connection do) should still get the answer to that request: its GOAWAY
 * speaks of streams the server might start, not of the client's own. The Go proxy answers;
 * Deno's HTTP engine (behind every listener: plain h2c, HTTPS and mTLS) closes the connection
 * without answering, and no option of it changes that. The README says so; this test
 * pins the current behaviour so that a Deno that answers shows up here (then flip the
 * expectation and drop the README line).
 */

import { assert } from "./assert.ts";
import { bytesOf, H2_PREFACE, h2Frame, h2Frames, h2GetHeaders } from "./fixture/raw_http.ts";
import { certText } from "./helpers.ts";
import { type ListenOptions, serveHealth } from "../lib/listen.ts";
import { silentLogger } from "../lib/log.ts";

const ca = certText("ca.pem");
const tls = { cert: certText("server.pem"), key: certText("server-key.pem") };
const client = { cert: certText("client.pem"), key: certText("client-key.pem") };

/** Frames the server sent for: preface, SETTINGS, GET / (stream 1), GOAWAY; until it closes. */
async function requestThenGoaway(kind: "plain" | "https" | "mtls"): Promise<string[]> {
  const extra: Partial<ListenOptions> = kind === "plain"
    ? {}
    : kind === "https"
    ? { tls }
    : { tls, clientCa: ca };
  const l = await serveHealth({
    addr: "localhost:0",
    handler: () => new Response("ok\n"),
    logger: silentLogger,
    ...extra,
  });
  try {
    const conn = kind === "plain"
      ? await Deno.connect({ hostname: "127.0.0.1", port: l.port })
      : await Deno.connectTls({
        hostname: "localhost",
        port: l.port,
        caCerts: [ca],
        alpnProtocols: ["h2"],
        ...(kind === "mtls" ? client : {}),
      });
    const endHeaders = 0x4, endStream = 0x1;
    await conn.write(bytesOf(
      H2_PREFACE,
      h2Frame("SETTINGS", 0, 0),
      h2Frame(
        "HEADERS",
        endHeaders | endStream,
        1,
        h2GetHeaders(kind === "plain" ? "http" : "https", "localhost"),
      ),
      h2Frame("GOAWAY", 0, 0, new Uint8Array(8)), // last stream 0, NO_ERROR
    ));
    // Generous: both servers close the connection by themselves well before this.
    const limit = setTimeout(() => conn.close(), 10_000);
    const received: Uint8Array[] = [];
    const buf = new Uint8Array(16384);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        received.push(buf.slice(0, n));
      }
    } catch { /* reset, or closed at the limit */ }
    clearTimeout(limit);
    try {
      conn.close();
    } catch { /* closed already */ }
    return h2Frames(bytesOf(...received));
  } finally {
    await l.shutdown();
  }
}

for (const kind of ["plain", "https", "mtls"] as const) {
  Deno.test(`HTTP/2 GOAWAY right after a request: Deno's engine (${kind}) does not answer it (README)`, async () => {
    const frames = await requestThenGoaway(kind);
    assert(frames.includes("GOAWAY(0)"), frames.join(" "));
    assert(
      !frames.includes("HEADERS(1)"),
      `Deno's engine now answers (${frames.join(" ")}): update the README and this test`,
    );
  });
}
