/**
 * The differential test of the one-shot modes' two paths: every outcome of the status table and
 * every fault case runs through the real `main.ts` twice, once with the fast path allowed
 * (its own HTTP/2 client, grpc-js only as fallback) and once with grpc-js alone (the
 * test-only `GRPC_HEALTH_PROXY_TEST_PATH` switch), and both runs must give the same exit code
 * and the same stderr. Where the fast path may answer, the test also requires that it did.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { type FixtureTls, HealthFixture } from "./fixture/health_server.ts";
import { type RawFault, startRawUpstream } from "./fixture/raw_upstream.ts";
import { cert, closedPort, runMain, type RunResult, silentTcpServer } from "./helpers.ts";
import { PATH_SWITCH } from "../lib/probe.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Generous: a busy machine must not turn an answer into a timeout or a fallback. */
const SLOW_OK = ["-connect-timeout=20s", "-rpc-timeout=20s"];

/** Lines that name the path or time it: they differ between the paths by design. */
const PATH_LINES = /^(fast path: .*|answered by .*|time elapsed: .*)\n/gm;

/**
 * stderr without the path lines, and with wall-clock times (expired certificates) masked. With
 * `racyCause`, the cause of a failed connection or call is masked too (the gRPC code stays):
 * where the server aborts the handshake, grpc-js reports whichever of the alert, EPIPE or
 * ECONNRESET it sees first, and where it sends GOAWAY at once, "session destroyed" or an
 * RST_STREAM after EPIPE, on either path (both runs were answered by grpc-js there; the test
 * checks that as well).
 */
function comparable(r: RunResult, racyCause = false): string {
  const text = r.stderr.replace(PATH_LINES, "").replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, "<time>");
  return racyCause
    ? text.replace(/(failed to connect service at (?:"[^"]*"|\S+?): ).*$/m, "$1<cause>")
      .replace(/(health rpc failed: rpc error: code = \w+ desc = ).*$/m, "$1<cause>")
    : text;
}

/** Runs `args` (with `-v`) through both paths; asserts identical results; returns them. */
async function bothPaths(
  args: string[],
  racyCause = false,
): Promise<{ fast: RunResult; grpcJs: RunResult }> {
  const [fast, grpcJs] = await Promise.all([
    runMain([...args, "-v"], { env: { [PATH_SWITCH]: "fast" } }),
    runMain([...args, "-v"], { env: { [PATH_SWITCH]: "grpc-js" } }),
  ]);
  assertEquals(
    [fast.code, comparable(fast, racyCause)],
    [grpcJs.code, comparable(grpcJs, racyCause)],
    `fast path vs grpc-js for ${
      args.join(" ")
    }\n--- fast:\n${fast.stderr}\n--- grpc-js:\n${grpcJs.stderr}`,
  );
  assertMatch(grpcJs.stderr, /^answered by grpc-js$/m);
  if (racyCause) assertMatch(fast.stderr, /^answered by grpc-js$/m);
  assert(!/^\s+at /m.test(fast.stderr), `stack trace on the fast path: ${fast.stderr}`);
  return { fast, grpcJs };
}

const FAST = /^answered by the fast path/m;

function tlsFlags(tls: FixtureTls): string[] {
  if (tls === "none") return [];
  const flags = ["-tls", `-tls-ca-cert=${cert("ca.pem")}`];
  if (tls === "mtls") {
    flags.push(
      `-tls-client-cert=${cert("client.pem")}`,
      `-tls-client-key=${cert("client-key.pem")}`,
    );
  }
  return flags;
}

for (const tls of ["none", "tls", "mtls"] as const) {
  Deno.test({
    name: `both paths agree on every outcome of the status table (${tls})`,
    ...opts,
    fn: async (t) => {
      const f = await HealthFixture.start({ tls });
      try {
        const probe = ["-addr", f.target, "-service=svc", ...tlsFlags(tls)];
        const runcli = [
          "-runcli",
          "-grpcaddr",
          f.target,
          "-service-name=svc",
          ...tlsFlagsProxy(tls),
        ];
        const definitive = ["SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN"] as const;
        for (const status of definitive) {
          await t.step(status, async () => {
            f.setStatus("svc", status);
            for (const args of [probe, runcli]) {
              const { fast } = await bothPaths([...args, ...SLOW_OK]);
              assertMatch(fast.stderr, FAST, `the fast path must answer ${status}`);
            }
          });
        }
        const errors: [string, () => void, string[]][] = [
          ["NOT_FOUND", () => f.removeService("svc"), SLOW_OK],
          ["UNIMPLEMENTED", () => (f.behavior = "unimplemented"), SLOW_OK],
          ["RPC_ERROR", () => (f.behavior = { code: 13, details: "internal trouble" }), SLOW_OK],
          [
            "DEADLINE_EXCEEDED",
            () => (f.behavior = "hang"),
            ["-connect-timeout=20s", "-rpc-timeout=300ms"],
          ],
        ];
        for (const [name, setup, timeouts] of errors) {
          await t.step(name, async () => {
            f.behavior = "normal";
            f.setStatus("svc", "SERVING");
            setup();
            for (const args of [probe, runcli]) await bothPaths([...args, ...timeouts]);
          });
        }
      } finally {
        await f.stop();
      }
    },
  });
}

function tlsFlagsProxy(tls: FixtureTls): string[] {
  return tlsFlags(tls).map((f) => f.replace(/^-tls/, "-grpctls").replace(/^-grpctls-/, "-grpc-"));
}

Deno.test({
  name: "both paths agree on connection failures: refused, silent, TLS mismatches",
  ...opts,
  fn: async (t) => {
    const tls = await HealthFixture.start({ tls: "tls" });
    const mtls = await HealthFixture.start({ tls: "mtls" });
    const plain = await HealthFixture.start();
    const noIp = await HealthFixture.start({ tls: "tls", serverCert: "noip-server" });
    const expired = await HealthFixture.start({ tls: "tls", serverCert: "expired-server" });
    const silent = silentTcpServer();
    const ca = `-tls-ca-cert=${cert("ca.pem")}`;
    try {
      // The cases whose cause grpc-js words differently from run to run (see comparable).
      const racy = new Set([
        "mTLS server, no client certificate",
        "mTLS, client certificate of another CA",
        "mTLS, expired client certificate",
        "plaintext client, TLS server",
        "TLS client, plaintext server",
      ]);
      const cases: [string, string[]][] = [
        ["refused", ["-addr", `127.0.0.1:${closedPort()}`, "-connect-timeout=5s"]],
        ["silent TCP", ["-addr", `127.0.0.1:${silent.port}`, "-connect-timeout=1s"]],
        ["unknown CA (system roots)", ["-addr", tls.target, "-tls", "-connect-timeout=5s"]],
        ["CA of another issuer", [
          "-addr",
          tls.target,
          "-tls",
          `-tls-ca-cert=${cert("other-ca.pem")}`,
          "-connect-timeout=5s",
        ]],
        ["IP not in the certificate", ["-addr", noIp.target, "-tls", ca, "-connect-timeout=5s"]],
        ["expired certificate", ["-addr", expired.target, "-tls", ca, "-connect-timeout=5s"]],
        ["mTLS server, no client certificate", [
          "-addr",
          mtls.target,
          "-tls",
          ca,
          "-connect-timeout=5s",
        ]],
        ["mTLS, client certificate of another CA", [
          "-addr",
          mtls.target,
          "-tls",
          ca,
          `-tls-client-cert=${cert("other-client.pem")}`,
          `-tls-client-key=${cert("other-client-key.pem")}`,
          "-connect-timeout=5s",
        ]],
        ["mTLS, expired client certificate", [
          "-addr",
          mtls.target,
          "-tls",
          ca,
          `-tls-client-cert=${cert("expired-client.pem")}`,
          `-tls-client-key=${cert("expired-client-key.pem")}`,
          "-connect-timeout=5s",
        ]],
        ["plaintext client, TLS server", ["-addr", tls.target, "-connect-timeout=5s"]],
        ["TLS client, plaintext server", [
          "-addr",
          plain.target,
          "-tls",
          ca,
          "-connect-timeout=5s",
        ]],
        ["key of another certificate", [
          "-addr",
          mtls.target,
          "-tls",
          ca,
          `-tls-client-cert=${cert("client.pem")}`,
          `-tls-client-key=${cert("other-client-key.pem")}`,
        ]],
        ["unreadable CA file", ["-addr", tls.target, "-tls", "-tls-ca-cert=/nonexistent/ca.pem"]],
        ["CA file without PEM", ["-addr", tls.target, "-tls", `-tls-ca-cert=${cert("README.md")}`]],
      ];
      for (const [name, args] of cases) {
        await t.step(name, async () => {
          await bothPaths(args, racy.has(name));
          await bothPaths(["-runcli", ...args], racy.has(name));
        });
      }
    } finally {
      silent.close();
      await Promise.all([tls.stop(), mtls.stop(), plain.stop(), noIp.stop(), expired.stop()]);
    }
  },
});

/** Raw faults and whether the fast path may answer them itself. */
const rawFaults: [RawFault, boolean][] = [
  ["serving", true],
  ["unknown-enum", true],
  ["negative-enum", true],
  ["goaway", false],
  // The fast path reads trailers: a message without grpc-status is grpc-js's to report.
  ["no-trailers", false],
  ["rst", false],
  ["bad-protobuf", false],
  ["http-500", false],
  ["truncated", false],
  ["huge", false],
];

Deno.test({
  name: "both paths agree on malformed answers (HTTP/2 and gRPC framing faults)",
  ...opts,
  fn: async (t) => {
    for (const [fault, answers] of rawFaults) {
      await t.step(fault, async () => {
        const raw = await startRawUpstream(fault);
        try {
          // GOAWAY at connection start: grpc-js's wording races (see comparable).
          const racy = fault === "goaway";
          const { fast } = await bothPaths(["-addr", raw.target, ...SLOW_OK], racy);
          assertEquals(FAST.test(fast.stderr), answers, fast.stderr);
        } finally {
          await raw.close();
        }
      });
    }
  },
});

Deno.test({
  name: "several services: the fast path answers what it can, grpc-js the rest, same output",
  ...opts,
  fn: async () => {
    const f = await HealthFixture.start({ statuses: { a: "SERVING", b: "NOT_SERVING" } });
    try {
      const { fast } = await bothPaths(["-addr", f.target, "-service=a,b", ...SLOW_OK]);
      assertMatch(fast.stderr, FAST);
      const partly = await bothPaths(["-addr", f.target, "-service=a,gone,b", ...SLOW_OK]);
      assertMatch(partly.fast.stderr, /^fast path: asking grpc-js \(grpc-status 5\)$/m);
    } finally {
      await f.stop();
    }
  },
});

Deno.test({
  name: "flags the fast path cannot honour go to grpc-js, with the same results",
  ...opts,
  fn: async (t) => {
    const tls = await HealthFixture.start({ tls: "tls" });
    const plain = await HealthFixture.start();
    const ca = `-tls-ca-cert=${cert("ca.pem")}`;
    try {
      const cases: [string, string[]][] = [
        ["-gzip", ["-addr", plain.target, "-gzip"]],
        ["-tls-no-verify", ["-addr", tls.target, "-tls", "-tls-no-verify"]],
        ["-tls-server-name", ["-addr", tls.target, "-tls", ca, "-tls-server-name=localhost"]],
        ["dns:///", ["-addr", `dns:///${plain.target}`]],
      ];
      for (const [name, args] of cases) {
        await t.step(name, async () => {
          const { fast } = await bothPaths([...args, ...SLOW_OK]);
          assertEquals(fast.code, 0, fast.stderr);
          assertMatch(fast.stderr, /^fast path: not used \(.+\)$/m);
        });
      }
    } finally {
      await Promise.all([tls.stop(), plain.stop()]);
    }
  },
});

Deno.test({
  name: "the fast path sends the user agent, -rpc-header metadata and a deadline as grpc-js does",
  ...opts,
  fn: async () => {
    const f = await HealthFixture.start();
    try {
      const args = [
        "-addr",
        f.target,
        "-user-agent=probe-ua/1",
        "-rpc-header=authorization: Bearer T",
        "-rpc-header=x-tenant: blue",
        "-rpc-header=x-zone: a",
        "-rpc-header=x-zone: b",
        "-connect-timeout=20s",
        "-rpc-timeout=7s",
        "-v",
      ];
      const sent: Record<string, string>[] = [];
      // Proxy variables apply to neither path (grpc-js is told to ignore them).
      const proxy = silentTcpServer();
      const proxyUrl = `http://127.0.0.1:${proxy.port}`;
      const env = { http_proxy: proxyUrl, https_proxy: proxyUrl, ALL_PROXY: proxyUrl };
      for (const path of ["fast", "grpc-js"]) {
        const r = await runMain(args, { env: { ...env, [PATH_SWITCH]: path } });
        assertEquals(r.code, 0, r.stderr);
        assertMatch(r.stderr, path === "fast" ? FAST : /^answered by grpc-js$/m);
        sent.push({ ...f.lastMetadata });
      }
      const [fast, grpcJs] = sent;
      const viaProxy = proxy.firstBytes().filter((b) => /^CONNECT |grpc\.health/.test(b));
      proxy.close();
      assertEquals(viaProxy, [], "the proxy was used");
      const names = ["user-agent", "authorization", "x-tenant", "x-zone", "grpc-accept-encoding"];
      for (const name of names) assertEquals(fast[name], grpcJs[name], `header ${name}`);
      assertEquals(fast["x-zone"], "a, b", "a repeated -rpc-header is sent once per value");
      assertEquals(fast["user-agent"].startsWith("probe-ua/1 grpc-node-js/"), true);
      // A deadline of 7s, in grpc-js's unit (milliseconds), minus what the sending took.
      for (const s of sent) assertMatch(s["grpc-timeout"], /^(69\d\d|7000)m$/);
    } finally {
      await f.stop();
    }
  },
});
