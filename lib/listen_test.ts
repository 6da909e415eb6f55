import { haveCurl } from "../tests/helpers.ts";
import { capturingLogger } from "./log.ts";
import { assert, assertEquals, assertEventually, assertMatch } from "../tests/assert.ts";
import { certText } from "../tests/helpers.ts";
import {
  canReusePort,
  connectionTimeoutsSupported,
  type Listener,
  type ListenOptions,
  serveHealth,
} from "./listen.ts";
import { silentLogger } from "./log.ts";

const ca = certText("ca.pem");
const tls = { cert: certText("server.pem"), key: certText("server-key.pem") };
const client = { cert: certText("client.pem"), key: certText("client-key.pem") };
const otherClient = { cert: certText("other-client.pem"), key: certText("other-client-key.pem") };
/** The same names as `server.pem`, signed by an unrelated CA. */
const otherCa = certText("other-ca.pem");
const otherTls = { cert: certText("other-server.pem"), key: certText("other-server-key.pem") };

/** Answers `<METHOD> <path>`; HEAD gets no body. */
const echo = (req: Request) =>
  new Response(req.method === "HEAD" ? null : `${req.method} ${new URL(req.url).pathname}\n`, {
    headers: { "content-type": "text/plain" },
  });

function serve(over: Partial<ListenOptions> = {}): Promise<Listener> {
  return serveHealth({ addr: "127.0.0.1:0", handler: echo, logger: silentLogger, ...over });
}

/** `https://localhost:<port>`: the server certificate names localhost. */
const tlsUrl = (l: Listener, path = "/") => `https://localhost:${l.port}${path}`;

/** Fetches with a dedicated client (closed afterwards, so no pooled connection leaks). */
async function fetchWith(
  url: string,
  opts: Deno.CreateHttpClientOptions = {},
  init: RequestInit = {},
): Promise<{ status: number; text: string; headers: Headers }> {
  const httpClient = Deno.createHttpClient(opts);
  try {
    const res = await fetch(url, { ...init, client: httpClient });
    return { status: res.status, text: await res.text(), headers: res.headers };
  } finally {
    httpClient.close();
  }
}

/**
 * Runs curl; returns its exit code, body (without its final newline), and
 * `<http_code> <http_version>`.
 */
async function curl(args: string[]): Promise<{ code: number; body: string; info: string }> {
  const out = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "10", "-w", "\n%{http_code} %{http_version}", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const cut = text.lastIndexOf("\n");
  return { code: out.code, body: text.slice(0, cut).replace(/\n$/, ""), info: text.slice(cut + 1) };
}

/** Writes the certificate files curl needs to a temporary directory. */
async function pemFiles(): Promise<{ dir: string; file: (name: string) => string }> {
  const dir = await Deno.makeTempDir({ prefix: "listen_test_" });
  const files: Record<string, string> = {
    "ca.pem": ca,
    "client.pem": client.cert,
    "client-key.pem": client.key,
    "other.pem": otherClient.cert,
    "other-key.pem": otherClient.key,
  };
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return { dir, file: (name) => `${dir}/${name}` };
}

/** A promise with its resolver, for holding a request in flight. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => open = r);
  return { promise, open };
}

/**
 * Reads from `conn` until the peer closes it (or it errors) and resolves with the ms that took;
 * gives up after `limitMs` (closing it ourselves) and resolves with Infinity.
 */
async function untilClosed(conn: Deno.Conn, limitMs = 5000): Promise<number> {
  const t0 = performance.now();
  const limit = setTimeout(() => {
    try {
      conn.close();
    } catch { /* already closed */ }
  }, limitMs);
  let byPeer = true;
  const buf = new Uint8Array(1024);
  try {
    while ((await conn.read(buf)) !== null) { /* discard */ }
  } catch (e) {
    // Reset or TLS error: closed by the peer as well, unless we closed it at the limit.
    byPeer = !(e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted);
  }
  const took = performance.now() - t0;
  clearTimeout(limit);
  try {
    conn.close();
  } catch { /* already closed */ }
  return byPeer && took < limitMs ? took : Infinity;
}

Deno.test("plain HTTP/1.1 via fetch, on IPv4, IPv6, localhost and all interfaces", async () => {
  for (const addr of ["127.0.0.1:0", "[::1]:0", "localhost:0", ":0"]) {
    const l = await serve({ addr });
    try {
      assertMatch(l.url, /^http:\/\/(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+$/);
      assert(l.port > 0);
      const target = addr === ":0" ? `http://127.0.0.1:${l.port}/x` : `${l.url}/x`;
      const res = await fetchWith(target, { http2: false });
      assertEquals([res.status, res.text], [200, "GET /x\n"], addr);
    } finally {
      await l.shutdown();
    }
  }
});

Deno.test("plain HTTP: ':port' listens on IPv6 and IPv4 (dual stack, like Go)", async () => {
  const l = await serve({ addr: ":0" });
  try {
    for (const host of ["127.0.0.1", "[::1]"]) {
      const res = await fetchWith(`http://${host}:${l.port}/`);
      assertEquals(res.status, 200, host);
    }
  } finally {
    await l.shutdown();
  }
});

Deno.test("plain HTTP: h2c with prior knowledge (curl) and HTTP/1.1 HEAD", async () => {
  if (!(await haveCurl("h2c with prior knowledge"))) return;
  const l = await serve();
  try {
    const h2c = await curl(["--http2-prior-knowledge", `${l.url}/h2c`]);
    assertEquals([h2c.code, h2c.body, h2c.info], [0, "GET /h2c", "200 2"]);
    const h1 = await curl(["--http1.1", `${l.url}/h1`]);
    assertEquals([h1.code, h1.body, h1.info], [0, "GET /h1", "200 1.1"]);
    const head = await curl(["--http1.1", "-I", `${l.url}/`]);
    assertEquals(head.code, 0);
    assertMatch(head.body, /^HTTP\/1\.1 200/);
  } finally {
    await l.shutdown();
  }
});

Deno.test("TLS: fetch trusting the test CA; curl gets h2 and http/1.1 by ALPN", async () => {
  const l = await serve({ addr: "localhost:0", tls });
  const pem = await pemFiles();
  try {
    assertMatch(l.url, /^https:/);
    const res = await fetchWith(tlsUrl(l, "/tls"), { caCerts: [ca] });
    assertEquals([res.status, res.text], [200, "GET /tls\n"]);
    if (await haveCurl("TLS with ALPN h2 / http/1.1")) {
      const h2 = await curl(["--cacert", pem.file("ca.pem"), "--http2", tlsUrl(l, "/a")]);
      assertEquals([h2.code, h2.body, h2.info], [0, "GET /a", "200 2"]);
      const h1 = await curl(["--cacert", pem.file("ca.pem"), "--http1.1", tlsUrl(l, "/b")]);
      assertEquals([h1.code, h1.body, h1.info], [0, "GET /b", "200 1.1"]);
    }
    // A client that does not trust the CA fails its handshake.
    let refused = false;
    try {
      await fetchWith(tlsUrl(l));
    } catch {
      refused = true;
    }
    assert(refused, "an untrusting client must not get an answer");
  } finally {
    await l.shutdown();
    await Deno.remove(pem.dir, { recursive: true });
  }
});

Deno.test("mTLS: a client certificate from the CA is accepted (fetch, curl h2 and http/1.1)", async () => {
  const l = await serve({ addr: "localhost:0", tls, clientCa: ca });
  const pem = await pemFiles();
  try {
    assertMatch(l.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetchWith(tlsUrl(l, "/m"), { caCerts: [ca], ...client });
    assertEquals([res.status, res.text], [200, "GET /m\n"]);
    const head = await fetchWith(tlsUrl(l, "/m"), { caCerts: [ca], ...client }, {
      method: "HEAD",
    });
    assertEquals([head.status, head.text], [200, ""]);
    if (await haveCurl("mTLS via curl")) {
      const auth = ["--cacert", pem.file("ca.pem"), "--cert", pem.file("client.pem")];
      auth.push("--key", pem.file("client-key.pem"));
      const h2 = await curl([...auth, "--http2", tlsUrl(l, "/a?x=1")]);
      assertEquals([h2.code, h2.body, h2.info], [0, "GET /a", "200 2"]);
      const h1 = await curl([...auth, "--http1.1", tlsUrl(l, "/b")]);
      assertEquals([h1.code, h1.body, h1.info], [0, "GET /b", "200 1.1"]);
      const post = await curl([...auth, "--http1.1", "-X", "POST", "-d", "x=y", tlsUrl(l, "/p")]);
      assertEquals([post.code, post.body, post.info], [0, "POST /p", "200 1.1"]);
    }
  } finally {
    await l.shutdown();
    await Deno.remove(pem.dir, { recursive: true });
  }
});

Deno.test("mTLS: no client certificate, or one from another CA, is refused", async () => {
  const l = await serve({ addr: "localhost:0", tls, clientCa: ca });
  const pem = await pemFiles();
  try {
    for (const [name, opts] of [["none", {}], ["other CA", otherClient]] as const) {
      const outcome = await fetchWith(tlsUrl(l), { caCerts: [ca], ...opts })
        .then((r) => `HTTP ${r.status}`, () => "refused");
      assertEquals(outcome, "refused", name);
    }
    if (await haveCurl("mTLS refusals via curl")) {
      const none = await curl(["--cacert", pem.file("ca.pem"), tlsUrl(l)]);
      assert(none.code !== 0 && none.body === "", `no cert: curl exit ${none.code}`);
      const other = await curl([
        ...["--cacert", pem.file("ca.pem"), "--cert", pem.file("other.pem")],
        ...["--key", pem.file("other-key.pem"), tlsUrl(l)],
      ]);
      assert(other.code !== 0 && other.body === "", `other CA: curl exit ${other.code}`);
    }
    // The listener is still fine afterwards.
    const ok = await fetchWith(tlsUrl(l), { caCerts: [ca], ...client });
    assertEquals(ok.status, 200);
  } finally {
    await l.shutdown();
    await Deno.remove(pem.dir, { recursive: true });
  }
});

Deno.test("port in use: one clear line, for every kind of listener", async () => {
  const first = await serve();
  try {
    const addr = `127.0.0.1:${first.port}`;
    for (const extra of [{}, { tls }, { tls, clientCa: ca }]) {
      try {
        const l = await serve({ addr, ...extra });
        await l.shutdown();
        throw new Error("listened twice");
      } catch (e) {
        assert(e instanceof Error);
        assertEquals(e.message, `cannot listen on ${addr}: address already in use`);
      }
    }
  } finally {
    await first.shutdown();
  }
});

Deno.test("bad certificate, key or CA PEM: one clear line", async () => {
  const cases: [string, Partial<ListenOptions>, RegExp][] = [
    ["garbage cert", { tls: { cert: "garbage", key: tls.key } }, /bad TLS certificate/],
    ["garbage key", { tls: { cert: tls.cert, key: "garbage" } }, /bad TLS key/],
    ["mismatched key", { tls: { cert: tls.cert, key: client.key } }, /does not match/],
    ["garbage CA", { tls, clientCa: "garbage" }, /bad client CA certificate/],
    ["CA without cert", { clientCa: ca }, /needs a server certificate/],
  ];
  for (const [name, extra, re] of cases) {
    try {
      const l = await serve(extra);
      await l.shutdown();
      throw new Error(`${name}: accepted`);
    } catch (e) {
      assert(e instanceof Error);
      assertMatch(e.message, /^cannot listen on 127\.0\.0\.1:0: /, name);
      assertMatch(e.message, re, name);
      assert(!e.message.includes("\n"), name);
    }
  }
});

Deno.test("a throwing handler gives a bare 500, and the listener goes on", async () => {
  let calls = 0;
  const l = await serve({
    handler: () => {
      if (calls++ === 0) throw new Error("secret internals 10.9.8.7");
      return new Response("ok");
    },
  });
  try {
    const bad = await fetchWith(`${l.url}/`);
    assertEquals([bad.status, bad.text], [500, "internal error\n"]);
    assertEquals((await fetchWith(`${l.url}/`)).status, 200);
  } finally {
    await l.shutdown();
  }
});

/** Shutdown while a request is held in flight: it gets its answer, new connections are refused. */
async function shutdownWithInFlight(
  over: Partial<ListenOptions>,
  clientOpts: Deno.CreateHttpClientOptions,
) {
  const entered = gate();
  const release = gate();
  const l = await serve({
    ...over,
    handler: async (req) => {
      entered.open();
      await release.promise;
      return new Response(`done ${new URL(req.url).pathname}`);
    },
  });
  const base = over.tls ? tlsUrl(l) : `${l.url}/`;
  const inFlight = fetchWith(`${base}slow`, clientOpts);
  await entered.promise;
  const shut = l.shutdown();
  // Once the listener has closed its socket, new connections are refused while draining.
  await assertEventually(async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: l.port })).close();
      return false;
    } catch {
      return true;
    }
  }, "new connections to be refused while draining");
  release.open();
  const res = await inFlight;
  assertEquals([res.status, res.text], [200, "done /slow"]);
  const t0 = performance.now();
  await shut;
  assert(performance.now() - t0 < 4000, "shutdown should not wait for the grace period");
  assertEquals(l.shutdown(), l.shutdown(), "shutdown is idempotent");
}

Deno.test("shutdown lets an in-flight request finish (plain HTTP)", async () => {
  await shutdownWithInFlight({}, {});
});

Deno.test("shutdown lets an in-flight request finish (mTLS, h2)", async () => {
  await shutdownWithInFlight({ addr: "localhost:0", tls, clientCa: ca }, {
    caCerts: [ca],
    ...client,
  });
});

Deno.test("shutdown lets an in-flight request finish (mTLS, HTTP/1.1)", async () => {
  await shutdownWithInFlight({ addr: "localhost:0", tls, clientCa: ca }, {
    caCerts: [ca],
    ...client,
    http2: false,
  });
});

Deno.test("shutdown gives up on a request that never finishes after shutdownMs", async () => {
  const never = gate();
  const entered = gate();
  const l = await serve({
    timeouts: { shutdownMs: 300 },
    handler: async () => {
      entered.open();
      await never.promise;
      return new Response("late");
    },
  });
  const httpClient = Deno.createHttpClient({});
  const inFlight = fetch(`${l.url}/`, { client: httpClient }).then((r) => r.text()).catch(() => "");
  await entered.promise;
  const t0 = performance.now();
  await l.shutdown();
  const took = performance.now() - t0;
  assert(took >= 250 && took < 2000, `shutdown took ${took} ms`);
  never.open(); // let the handler and the server finish so the test leaks nothing
  await inFlight;
  httpClient.close();
});

Deno.test("the pinned Deno serves connection by connection, so plain and HTTPS have timeouts", () => {
  // Deno[Deno.internal].serveHttpOnConnection is internal: if a Deno upgrade drops it, the
  // listeners fall back to Deno.serve without header and idle timeouts. This makes that visible.
  assert(connectionTimeoutsSupported, `Deno ${Deno.version.deno} lacks serveHttpOnConnection`);
});

const encoded = (t: string) => new TextEncoder().encode(t);

/** The HTTP/2 client preface and an empty SETTINGS frame: a session that then says nothing. */
const H2_PREFACE = encoded("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");

/** Writes `bytes` one at a time every `everyMs` until stopped or the peer goes away. */
function dripBytes(conn: Deno.Conn, bytes: Uint8Array, everyMs: number): () => Promise<void> {
  let dripping = true;
  const done = (async () => {
    for (let i = 0; dripping; i = (i + 1) % bytes.length) {
      try {
        await conn.write(bytes.subarray(i, i + 1));
      } catch {
        return;
      }
      await sleep(everyMs);
    }
  })();
  return () => {
    dripping = false;
    return done;
  };
}

for (const scheme of ["http", "https"] as const) {
  Deno.test(`${scheme}: slow, silent and idle clients are cut off and do not block others`, async () => {
    const [handshakeMs, headersMs, idleMs] = [300, 400, 900];
    const l = await serve({
      ...(scheme === "https" ? { tls, addr: "localhost:0" } : {}),
      timeouts: { handshakeMs, headersMs, idleMs },
    });
    // Plain TCP, or TLS with the handshake done, as a test client would have it.
    const open = async (alpn = "http/1.1") => {
      if (scheme === "http") return await Deno.connect({ hostname: "127.0.0.1", port: l.port });
      const c = await Deno.connectTls({
        hostname: "localhost",
        port: l.port,
        caCerts: [ca],
        alpnProtocols: [alpn],
      });
      await c.handshake();
      return c;
    };
    const stops: (() => Promise<void>)[] = [];
    try {
      // 1. TCP connection that never sends a byte (on HTTPS: never starts the handshake).
      const silent = untilClosed(await Deno.connect({ hostname: "127.0.0.1", port: l.port }));
      // 2. Slowloris: request headers dripped forever.
      const dripper = await open();
      stops.push(dripBytes(dripper, encoded("GET / HTTP/1.1\r\nHost: x\r\nX-A: "), 50));
      const dripped = untilClosed(dripper);
      // 3. HTTP/2 preface and settings, then nothing.
      const h2 = await open("h2");
      await h2.write(H2_PREFACE);
      const h2Idle = untilClosed(h2);
      // 4. Keep-alive: one request answered, then nothing: closed idleMs after the answer.
      const kept = await open();
      await kept.write(encoded("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"));
      const keptIdle = untilClosed(kept);
      // 5. On HTTPS, a handshake that stops halfway (a ClientHello header and no more).
      const halfway = scheme === "https"
        ? await Deno.connect({ hostname: "127.0.0.1", port: l.port })
        : undefined;
      await halfway?.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
      const halfwayClosed = halfway ? untilClosed(halfway) : Promise.resolve(0);

      // Meanwhile others get their answers.
      const base = scheme === "https" ? tlsUrl(l, "/ok") : `${l.url}/ok`;
      for (const http2 of [false, true]) {
        const res = await fetchWith(base, { caCerts: [ca], http2 });
        assertEquals([res.status, res.text], [200, "GET /ok\n"]);
      }

      const [tSilent, tDrip, tH2, tKept, tHalfway] = await Promise.all([
        silent,
        dripped,
        h2Idle,
        keptIdle,
        halfwayClosed,
      ]);
      const took = { tSilent, tDrip, tH2, tKept, tHalfway };
      // Generous bounds: each must be closed, and not long before or after its timeout (with
      // TLS, a silent client never starts the handshake, so the handshake timeout applies).
      const within = (what: string, ms: number, limit: number) =>
        assert(ms >= limit * 0.8 && ms < limit + 2500, `${what}: ${JSON.stringify(took)}`);
      within("silent", tSilent, scheme === "http" ? headersMs : handshakeMs);
      if (halfway) within("stopped mid-handshake", tHalfway, handshakeMs);
      within("slowloris", tDrip, headersMs);
      within("HTTP/2 preface only", tH2, headersMs);
      within("kept-alive", tKept, idleMs);
    } finally {
      for (const stop of stops) await stop();
      await l.shutdown();
    }
  });
}

Deno.test("http: a connection stays open while its request is answered, however long", async () => {
  const held = holdingHandler();
  const l = await serve({ handler: held.handler, timeouts: { headersMs: 200, idleMs: 200 } });
  try {
    const answer = fetchWith(`${l.url}/held`);
    await held.entered.promise;
    await sleep(700); // several timeouts long
    held.release.open();
    assertEquals((await answer).status, 200);
  } finally {
    await l.shutdown();
  }
});

Deno.test("shutdown closes idle kept-alive connections at once (HTTP/1.1 and h2c)", async () => {
  const l = await serve();
  const h1 = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
  await h1.write(encoded("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const h2 = await Deno.connect({ hostname: "127.0.0.1", port: l.port });
  await h2.write(H2_PREFACE);
  const closed = Promise.all([untilClosed(h1), untilClosed(h2)]);
  await sleep(100);
  const t0 = performance.now();
  await l.shutdown();
  const [t1, t2] = await closed;
  assert(t1 !== Infinity && t2 !== Infinity, "both closed by the server");
  assert(performance.now() - t0 < 2000, "shutdown did not wait for idle connections");
});

Deno.test("without per-connection serving (denoServe), plain, HTTPS and mTLS still answer", async () => {
  for (
    const extra of [{}, { tls, addr: "localhost:0" }, { tls, addr: "localhost:0", clientCa: ca }]
  ) {
    const l = await serve({ ...extra, denoServe: true });
    try {
      const url = extra.tls ? tlsUrl(l, "/x") : `${l.url}/x`;
      const res = await fetchWith(url, { caCerts: [ca], ...client });
      assertEquals([res.status, res.text], [200, "GET /x\n"]);
      if ("clientCa" in extra) {
        const refused = await fetchWith(url, { caCerts: [ca] }).catch(() => "refused");
        assertEquals(refused, "refused", "mTLS without a client certificate");
      }
    } finally {
      await l.shutdown();
    }
  }
});

Deno.test("mTLS: slow or silent clients are cut off and do not block others", async () => {
  const l = await serve({
    addr: "localhost:0",
    tls,
    clientCa: ca,
    timeouts: { handshakeMs: 300, headersMs: 400, idleMs: 700 },
  });
  try {
    const tlsConn = (alpn: string) =>
      Deno.connectTls({
        hostname: "localhost",
        port: l.port,
        caCerts: [ca],
        ...client,
        alpnProtocols: [alpn],
      });
    // 1. TCP connection that never starts the handshake.
    const silent = untilClosed(await Deno.connect({ hostname: "127.0.0.1", port: l.port }));
    // 2. HTTP/1.1 slowloris: headers dripped forever.
    const drip = await tlsConn("http/1.1");
    await drip.handshake();
    const dripClosed = untilClosed(drip);
    const stopDripping = dripBytes(drip, encoded("GET / HTTP/1.1\r\nHost: x\r\nX-A: "), 50);
    // 3. HTTP/2 session that sends the preface and then nothing.
    const idle = await tlsConn("h2");
    await idle.handshake();
    await idle.write(H2_PREFACE);
    const idleClosed = untilClosed(idle);

    // Meanwhile a good client gets its answers.
    const ok = await fetchWith(tlsUrl(l, "/ok"), { caCerts: [ca], ...client });
    assertEquals(ok.status, 200);

    const [tSilent, tDrip, tIdle] = await Promise.all([silent, dripClosed, idleClosed]);
    await stopDripping();
    assert(tSilent < 2000, `silent TCP client held for ${tSilent} ms`);
    assert(tDrip < 2000, `slowloris client held for ${tDrip} ms`);
    assert(tIdle < 3000, `idle HTTP/2 session held for ${tIdle} ms`);
  } finally {
    await l.shutdown();
  }
});

Deno.test("mTLS: HTTP/1.1 keep-alive serves several requests on one connection", async () => {
  const l = await serve({ addr: "localhost:0", tls, clientCa: ca });
  const httpClient = Deno.createHttpClient({ caCerts: [ca], ...client, http2: false });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(tlsUrl(l, `/k${i}`), { client: httpClient });
      assertEquals(await res.text(), `GET /k${i}\n`);
    }
  } finally {
    httpClient.close();
    await l.shutdown();
  }
});

// --- certificate replacement -------------------------------------------------------------------

/** Client options, with an optional client certificate. */
type ClientOpts = Deno.CreateHttpClientOptions & { cert?: string; key?: string };

/** The client certificate over HTTP/1.1 (h2 with client certificates: lib/mtls_test.ts). */
const h1Client: ClientOpts = { ...client, http2: false };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether a new client (a fresh `Deno.createHttpClient`, so a new connection and handshake)
 * that trusts only `caPem` gets a 200 from `url`.
 */
function trustedBy(
  url: string,
  caPem: string,
  extra: ClientOpts = {},
): Promise<boolean> {
  return fetchWith(url, { caCerts: [caPem], ...extra }).then((r) => r.status === 200, () => false);
}

/** `message: cause` of a fetch error (Deno puts the real reason in `cause`). */
function describe(e: unknown): string {
  const err = e as Error;
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}

/**
 * Requests `url` in four loops while `during` runs (plus 100 ms before and after): two with a
 * new client per request (new connection and handshake each time) and two with a pooled client
 * (HTTP/2 and HTTP/1.1 keep-alive). Returns how many got a 200 and what went wrong otherwise.
 */
async function requestsAcross(
  url: string,
  clientOpts: ClientOpts,
  during: () => Promise<void>,
): Promise<{ ok: number; failures: string[] }> {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const once = async (client: Deno.HttpClient) => {
    try {
      const res = await fetch(url, { client });
      await res.text();
      if (res.status === 200) ok++;
      else failures.push(`HTTP ${res.status}`);
    } catch (e) {
      failures.push(describe(e));
    }
  };
  const fresh = async () => {
    while (running) {
      const client = Deno.createHttpClient(clientOpts);
      try {
        await once(client);
      } finally {
        client.close();
      }
    }
  };
  const pooled = async (extra: Deno.CreateHttpClientOptions) => {
    const client = Deno.createHttpClient({ ...clientOpts, ...extra });
    try {
      while (running) await once(client);
    } finally {
      client.close();
    }
  };
  const loops = [fresh(), fresh(), pooled({}), pooled({ http2: false })];
  try {
    await sleep(100);
    await during();
    await sleep(100);
  } finally {
    running = false;
    await Promise.all(loops);
  }
  return { ok, failures };
}

/** The echo handler, except that `/held` waits for `release` (after opening `entered`). */
function holdingHandler() {
  const entered = gate();
  const release = gate();
  const handler = async (req: Request) => {
    if (new URL(req.url).pathname === "/held") {
      entered.open();
      await release.promise;
    }
    return echo(req);
  };
  return { handler, entered, release };
}

/**
 * Replaces the certificate of a listener serving `server.pem` (with a {@link holdingHandler})
 * five times, ending on `other-server.pem`, under load and with a request held in flight on the
 * first server; checks the before and after states: a client trusting only the other CA fails
 * before and succeeds after, one trusting only the test CA the reverse, the held request gets
 * its answer, and the port never changes. Returns the load's outcome for the caller to judge.
 */
async function swapUnderLoad(
  l: Listener,
  held: ReturnType<typeof holdingHandler>,
  clientExtra: ClientOpts = {},
): Promise<{ ok: number; failures: string[] }> {
  const port = l.port;
  const url = tlsUrl(l, "/swap");
  assert(await trustedBy(url, ca, clientExtra), "before: the test CA must be trusted");
  assert(!(await trustedBy(url, otherCa, clientExtra)), "before: the other CA must not be");
  const inFlight = fetchWith(tlsUrl(l, "/held"), { caCerts: [ca], ...clientExtra });
  await held.entered.promise;
  const outcome = await requestsAcross(
    url,
    { caCerts: [ca, otherCa], ...clientExtra },
    async () => {
      for (const pem of [otherTls, tls, otherTls, tls, otherTls]) {
        await l.updateCertificate(pem);
        assertEquals(l.port, port, "the port never changes");
        await sleep(40);
      }
    },
  );
  held.release.open();
  const answer = await inFlight;
  assertEquals([answer.status, answer.text], [200, "GET /held\n"], "the held request");
  assert(await trustedBy(url, otherCa, clientExtra), "after: the other CA must be trusted");
  assert(!(await trustedBy(url, ca, clientExtra)), "after: the test CA must not be");
  assertEquals(l.port, port);
  assert(outcome.ok > 50, `only ${outcome.ok} requests were answered during the swaps`);
  return outcome;
}

/**
 * Runs one test of this file again in a child `deno test --unstable-net` (which Deno requires
 * for `SO_REUSEPORT` on TLS listeners) and asserts it passed there.
 */
async function inChildWithUnstableNet(name: string): Promise<void> {
  if ((await Deno.permissions.query({ name: "run" })).state !== "granted") {
    console.warn(`SKIPPED (needs --allow-run to re-run with --unstable-net): ${name}`);
    return;
  }
  const file = new URL(import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      ...["test", "--unstable-net", "--no-check", "--allow-net", "--allow-read", "--allow-env"],
      `--filter=${name}`,
      file,
    ],
    cwd: new URL("..", import.meta.url).pathname,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.success, `child deno test --unstable-net failed:\n${text}`);
  assertMatch(text, /ok \| 1 passed/, text);
}

/**
 * Whether Linux hands connections queued on a closing `SO_REUSEPORT` socket to another socket of
 * the group (`net.ipv4.tcp_migrate_req=1`) instead of resetting them (the default, 0).
 */
function migratesQueuedConnections(): boolean {
  try {
    return Deno.readTextFileSync("/proc/sys/net/ipv4/tcp_migrate_req").trim() === "1";
  } catch {
    return false;
  }
}

Deno.test("updateCertificate, HTTPS: the port stays bound, no request fails", async () => {
  // The public port is accepted by Deno and TLS is terminated by node:tls (lib/tls_gate.ts): an
  // update swaps the certificate in place, nothing is refused, with or without --unstable-net.
  const { logger, lines } = capturingLogger();
  const held = holdingHandler();
  const l = await serve({
    addr: "localhost:0",
    tls,
    reusePort: false,
    logger,
    handler: held.handler,
  });
  try {
    const { failures } = await swapUnderLoad(l, held);
    assertEquals(failures, [], "requests failed during the swaps");
    assertEquals(lines.filter((l) => l.level !== "info" && l.level !== "debug"), []);
  } finally {
    await l.shutdown();
  }
});

const SEAMLESS_HTTPS =
  "updateCertificate, HTTPS on Deno.serve (SO_REUSEPORT): no request in flight fails";

Deno.test(SEAMLESS_HTTPS, async () => {
  if (!canReusePort()) return await inChildWithUnstableNet(SEAMLESS_HTTPS);
  const held = holdingHandler();
  const l = await serve({ addr: "localhost:0", tls, handler: held.handler, denoServe: true });
  try {
    const { ok, failures } = await swapUnderLoad(l, held);
    // Never refused, and every request on an open connection is answered. What Linux queued on
    // the old socket but nobody accepted yet is reset when it closes, unless
    // net.ipv4.tcp_migrate_req=1 (measured: 0 failures with it, a few per 50 swaps without).
    const migrates = migratesQueuedConnections();
    console.log(
      `\ncertificate swaps (tcp_migrate_req=${migrates ? 1 : 0}): ${ok} answered, ` +
        `${failures.length} reset while queued\n`,
    );
    if (migrates) assertEquals(failures, [], "requests failed during the swaps");
    for (const f of failures) assertMatch(f, /\(Connect\): Connection reset by peer/);
    assert(failures.length <= 10, `${failures.length} connections reset in 5 swaps`);
  } finally {
    await l.shutdown();
  }
  // Every server of the listener is gone after shutdown.
  const refused = await Deno.connect({ hostname: "127.0.0.1", port: l.port })
    .then((c) => c.close(), () => "refused");
  assertEquals(refused, "refused");
});

Deno.test("updateCertificate, HTTPS on Deno.serve without --unstable-net: the port is bound again", async () => {
  const { logger, lines } = capturingLogger();
  const held = holdingHandler();
  const l = await serve({
    addr: "localhost:0",
    tls,
    reusePort: false,
    denoServe: true,
    logger,
    handler: held.handler,
  });
  try {
    const { ok, failures } = await swapUnderLoad(l, held);
    // Only connections arriving in the few-ms gap fail: refused, or reset while queued on the
    // closing socket. Requests in flight (the held one included) are answered.
    for (const f of failures) {
      assertMatch(f, /connection refused|connection closed before message completed|reset/i);
    }
    assert(failures.length <= 40, `${failures.length} of ${ok + failures.length} refused`);
    const warned = lines.filter((l) => l.level === "warn" && /bound again/.test(l.msg));
    assertEquals(warned.length, 5, "one warning per update");
  } finally {
    await l.shutdown();
  }
});

Deno.test("updateCertificate, mTLS: no request fails, client certs still required", async () => {
  const held = holdingHandler();
  const l = await serve({ addr: "localhost:0", tls, clientCa: ca, handler: held.handler });
  try {
    const { failures } = await swapUnderLoad(l, held, h1Client);
    assertEquals(failures, [], "requests failed during the swaps");
    // The client CA survived the new secure context.
    const url = tlsUrl(l);
    const h1 = { http2: false };
    assert(!(await trustedBy(url, otherCa, h1)), "no client certificate must still be refused");
    assert(
      !(await trustedBy(url, otherCa, { ...otherClient, ...h1 })),
      "another CA's client must be refused",
    );
    assert(await trustedBy(url, otherCa, h1Client));
  } finally {
    await l.shutdown();
  }
});

Deno.test("updateCertificate: an unusable pair is refused and the current certificate stays", async () => {
  const bad: [string, { cert: string; key: string }, RegExp][] = [
    ["garbage certificate", { cert: "garbage", key: tls.key }, /bad TLS certificate/],
    ["garbage key", { cert: otherTls.cert, key: "garbage" }, /bad TLS key/],
    ["mismatched key", { cert: otherTls.cert, key: tls.key }, /does not match/],
  ];
  for (const extra of [{}, { denoServe: true, reusePort: false }, { clientCa: ca }]) {
    const l = await serve({ addr: "localhost:0", tls, ...extra });
    try {
      for (const [name, pem, re] of bad) {
        try {
          await l.updateCertificate(pem);
          throw new Error(`${name}: accepted`);
        } catch (e) {
          assert(e instanceof Error);
          assertMatch(e.message, /^certificate not replaced: /, name);
          assertMatch(e.message, re, name);
        }
      }
      assert(await trustedBy(tlsUrl(l), ca, h1Client), JSON.stringify(extra));
    } finally {
      await l.shutdown();
    }
  }
});

Deno.test("updateCertificate: plain HTTP and shut-down listeners refuse; updates apply in order", async () => {
  const plain = await serve();
  try {
    const e = await plain.updateCertificate(tls).then(() => undefined, (e: Error) => e);
    assertMatch(String(e?.message), /^certificate not replaced: a plain HTTP listener/);
  } finally {
    await plain.shutdown();
  }
  for (const extra of [{}, { denoServe: true, reusePort: false }, { clientCa: ca }]) {
    const l = await serve({ addr: "localhost:0", tls, ...extra });
    // Three updates at once end on the last one.
    await Promise.all([
      l.updateCertificate(otherTls),
      l.updateCertificate(tls),
      l.updateCertificate(otherTls),
    ]);
    assert(await trustedBy(tlsUrl(l), otherCa, h1Client), JSON.stringify(extra));
    await l.shutdown();
    const e = await l.updateCertificate(tls).then(() => undefined, (e: Error) => e);
    assertMatch(String(e?.message), /shut down/, JSON.stringify(extra));
  }
});

/** The status of `GET /` on the port, or 0 when there is no answer within 3 s. */
function answered(port: number, scheme = "http"): Promise<number> {
  const url = scheme === "https" ? `https://localhost:${port}/` : `http://127.0.0.1:${port}/`;
  return fetchWith(url, { caCerts: [ca] }, { signal: AbortSignal.timeout(3000) })
    .then((r) => r.status, () => 0);
}

for (const scheme of ["http", "https"]) {
  Deno.test(`${scheme}: out of file descriptors, the listener waits, says so once, and serves again`, async () => {
    if (Deno.build.os !== "linux") {
      console.warn("SKIPPED: needs Linux (sh and ulimit -n)");
      return;
    }
    // A child with room for ~60 descriptors, flooded with more connections than that.
    const dir = await Deno.makeTempDir();
    const script = `${dir}/serve.ts`;
    await Deno.writeTextFile(
      script,
      `import { serveHealth } from "${new URL("./listen.ts", import.meta.url).href}";
import { createLogger } from "${new URL("./log.ts", import.meta.url).href}";
const l = await serveHealth({
  addr: "127.0.0.1:0",
  handler: () => new Response("ok\\n"),
  logger: createLogger({}),
  tls: ${scheme === "https" ? JSON.stringify(tls) : "undefined"},
});
console.log(l.port);
`,
    );
    // stderr goes to a file: with a pipe, Deno 2.9.3 sometimes panicked (ext/signals) when it ran
    // out of descriptors, and then hung.
    const log = `${dir}/stderr.log`;
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        'ulimit -n 60 && exec "$0" run --no-check --allow-net --allow-read --allow-env "$1" 2>"$2"',
        Deno.execPath(),
        script,
        log,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const stderr = () => Deno.readTextFile(log).catch(() => "");
    const conns: Deno.Conn[] = [];
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the child ended before listening");
        out += value;
      }
      await reader.cancel();
      const port = Number(out.trim());
      // Deno 2.9.3 panics if it runs out of descriptors while still setting itself up (signal
      // handlers, seen here): one answered request and a pause first. That is Deno's start-up,
      // not the listener.
      assertEquals(await answered(port, scheme), 200, "before the flood");
      await sleep(1000);
      for (let i = 0; i < 120; i++) {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      await sleep(1500); // the accept loop runs out of descriptors and backs off
      for (const c of conns.splice(0)) c.close();
      let status = 0;
      for (let i = 0; i < 20 && status !== 200; i++) {
        status = await answered(port, scheme);
        if (status !== 200) await sleep(100);
      }
      assertEquals(
        status,
        200,
        `served again once descriptors were free; stderr:\n${await stderr()}`,
      );
    } finally {
      for (const c of conns) c.close();
      try {
        child.kill("SIGTERM");
      } catch { /* it has ended: stderr says why */ }
      await child.status;
    }
    const text = await stderr();
    await Deno.remove(dir, { recursive: true });
    const lines = text.split("\n").filter((l) => /cannot accept connections/.test(l));
    // HTTPS may close the connections it cannot take over before accept runs out itself.
    if (scheme === "https" && lines.length === 0) return;
    assertEquals(lines.length, 1, `one line per 10 s, got:\n${lines.join("\n")}`);
    assertMatch(lines[0], /too many open files/);
  });
}
