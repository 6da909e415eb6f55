import { assert, assertEquals, assertEventually } from "../tests/assert.ts";
import { cert as certPath, certText, haveCurl } from "../tests/helpers.ts";
import { makeClientCerts } from "../tests/fixture/client_certs.ts";
import { rawH2Get } from "../tests/fixture/raw_h2.ts";
import { capturingLogger, silentLogger } from "./log.ts";
import { type Listener, type ListenOptions, serveHealth } from "./listen.ts";

const ca = certText("ca.pem");
const tls = { cert: certText("server.pem"), key: certText("server-key.pem") };
const client = { cert: certText("client.pem"), key: certText("client-key.pem") };
const pair = (name: string) => ({
  cert: certText(`${name}.pem`),
  key: certText(`${name}-key.pem`),
});

/** Answers `<METHOD> <path> <host>`. */
const echo = (req: Request) => {
  const url = new URL(req.url);
  return new Response(`${req.method} ${url.pathname} ${url.host}\n`);
};

function serve(over: Partial<ListenOptions> = {}): Promise<Listener> {
  return serveHealth({ addr: "127.0.0.1:0", handler: echo, logger: silentLogger, ...over });
}

/**
 * 200 and the body, or "refused" when the connection or request failed, `times` times on one
 * client (with several outcomes: all of them). ALPN offers h2 and http/1.1 unless `http2` says
 * which.
 */
async function get(
  l: Listener,
  cert?: { cert: string; key: string },
  times = 1,
  http2?: boolean,
) {
  const alpn = http2 === undefined ? {} : { http2, http1: !http2 };
  const httpClient = Deno.createHttpClient({ caCerts: [ca], ...alpn, ...cert });
  const once = async () => {
    try {
      const res = await fetch(`https://localhost:${l.port}/c`, { client: httpClient });
      return `${res.status} ${await res.text()}`.trim();
    } catch {
      return "refused";
    }
  };
  try {
    // Several times on one client: later connections resume the TLS session of the first.
    const outcomes = [];
    for (let i = 0; i < times; i++) outcomes.push(await once());
    return [...new Set(outcomes)].join(", then ");
  } finally {
    httpClient.close();
  }
}

/**
 * Like {@link get} through curl (OpenSSL), for certificates that Deno's own TLS client refuses to
 * send (X.509 v1: it panics).
 */
async function curlGet(l: Listener, cert: { cert: string; key: string }) {
  const dir = await Deno.makeTempDir({ prefix: "mtls_curl_" });
  try {
    await Deno.writeTextFile(`${dir}/c.pem`, cert.cert);
    await Deno.writeTextFile(`${dir}/k.pem`, cert.key);
    const out = await new Deno.Command("curl", {
      args: [
        ...["-sS", "--max-time", "10", "--cacert", certPath("ca.pem"), "--cert", `${dir}/c.pem`],
        ...["--key", `${dir}/k.pem`, "--http1.1", `https://localhost:${l.port}/c`],
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? `200 ${new TextDecoder().decode(out.stdout)}`.trim() : "refused";
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("h2 without :authority (HAProxy's h2 checks): every listener answers", async () => {
  const kinds: [string, Partial<ListenOptions>, Parameters<typeof rawH2Get>[0]["tls"]][] = [
    ["plain h2c", {}, undefined],
    ["HTTPS", { tls }, { caCerts: [ca] }],
    ["mTLS", { tls, clientCa: ca }, { caCerts: [ca], ...client }],
  ];
  for (const [name, extra, clientTls] of kinds) {
    const l = await serve(extra);
    try {
      const target = { port: l.port, tls: clientTls };
      const bare = await rawH2Get(target, "/no-authority");
      assertEquals([bare.status, bare.goaway], [200, undefined], name);
      assert(bare.body.startsWith("GET /no-authority "), `${name}: ${bare.body}`);
      // With :authority, or with only a host header, as before.
      const named = await rawH2Get(target, "/named", [[":authority", "example.test"]]);
      assertEquals([named.status, named.body], [200, "GET /named example.test\n"], name);
      const host = await rawH2Get(target, "/host", [["host", "h.test"]]);
      assertEquals([host.status, host.body], [200, "GET /host h.test\n"], name);
    } finally {
      await l.shutdown();
    }
  }
});

Deno.test("mTLS: v3 client certificates that chain to the CA are accepted, others refused and logged", async () => {
  const made = await makeClientCerts();
  const { logger, lines } = capturingLogger();
  const l = await serve({ tls, clientCa: ca, logger });
  try {
    assertEquals(await get(l, client, 2), "200 GET /c localhost:" + l.port);
    assertEquals(await get(l, client, 2, false), "200 GET /c localhost:" + l.port, "HTTP/1.1");
    const chain = { ...made.viaIntermediate, cert: made.viaIntermediate.cert + made.intermediate };
    assertEquals(await get(l, chain), "200 GET /c localhost:" + l.port, "via an intermediate");
    // How: "fetch" (one connection), "twice" (a second fetch on the same client, which resumes
    // the TLS session of the refused first: refused as well), "curl" (Deno cannot send v1).
    const refused: [string, { cert: string; key: string } | undefined, string][] = [
      ["no certificate", undefined, "fetch"],
      ["expired", pair("expired-client"), "twice"],
      ["not yet valid", pair("notyet-client"), "fetch"],
      ["other CA", pair("other-client"), "twice"],
      ["self-signed", made.selfSigned, "fetch"],
      ["wrong usage", made.serverOnly, "fetch"],
      ["X.509 v1", made.v1, "curl"],
    ];
    for (const [reason, cert, how] of refused) {
      if (how === "curl" && !(await haveCurl(`mTLS ${reason}`))) continue;
      const before = lines.length;
      const connections = how === "twice" ? 2 : 1;
      const outcome = how === "curl" ? await curlGet(l, cert!) : await get(l, cert, connections);
      assertEquals(outcome, "refused", reason);
      // One line per refused connection, with the reason and the peer.
      const warned = () => lines.slice(before).filter((x) => x.level !== "debug");
      await assertEventually(() => warned().length >= connections, `${reason}: logged`);
      for (const line of warned()) {
        assertEquals([line.level, line.msg, line.fields?.reason], [
          "warn",
          "client certificate refused",
          reason,
        ]);
        assert(/^127\.0\.0\.1:\d+$/.test(String(line.fields?.peer)), String(line.fields?.peer));
      }
    }
    // Nothing else was logged at warn or above (at most 10 lines a minute: 9 refusals here).
    const loud = lines.filter((x) => x.level !== "debug" && x.level !== "info");
    assertEquals(loud.length, 9);
    assertEquals(await get(l, client), "200 GET /c localhost:" + l.port, "still serving");
  } finally {
    await l.shutdown();
    await made.remove();
  }
});
