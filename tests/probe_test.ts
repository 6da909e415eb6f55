/**
 * Probe and runcli modes end to end: the real `main.ts` as a subprocess against the real
 * fixture gRPC server, for every row of the status table, in plaintext, TLS and mTLS.
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { type FixtureTls, HealthFixture } from "./fixture/health_server.ts";
import {
  cert,
  closedPort,
  programPermissions,
  root,
  runMain,
  type RunResult,
  silentTcpServer,
} from "./helpers.ts";
import { type Outcome, statusTable } from "../lib/status.ts";
import { main } from "../main.ts";

/** Flags that make the program reach a fixture of the given kind. */
function transportFlags(tls: FixtureTls, spelling: "probe" | "proxy"): string[] {
  if (tls === "none") return [];
  const p = spelling === "probe";
  const flags = [
    p ? "-tls" : "-grpctls",
    `${p ? "-tls-ca-cert" : "-grpc-ca-cert"}=${cert("ca.pem")}`,
  ];
  if (tls === "mtls") {
    flags.push(
      `${p ? "-tls-client-cert" : "-grpc-client-cert"}=${cert("client.pem")}`,
      `${p ? "-tls-client-key" : "-grpc-client-key"}=${cert("client-key.pem")}`,
    );
  }
  return flags;
}

/** How to make the fixture produce each outcome. */
const scenarios: Record<Outcome, (f: HealthFixture) => void> = {
  SERVING: (f) => f.setStatus("svc", "SERVING"),
  NOT_SERVING: (f) => f.setStatus("svc", "NOT_SERVING"),
  UNKNOWN: (f) => f.setStatus("svc", "UNKNOWN"),
  SERVICE_UNKNOWN: (f) => f.setStatus("svc", "SERVICE_UNKNOWN"),
  NOT_FOUND: (f) => f.removeService("svc"),
  UNIMPLEMENTED: (f) => (f.behavior = "unimplemented"),
  DEADLINE_EXCEEDED: (f) => (f.behavior = "hang"),
  RPC_ERROR: (f) => (f.behavior = { code: 13, details: "internal trouble" }),
  CONNECTION_FAILED: () => {},
};

/** The stderr line each outcome gives in probe mode (grpc-health-probe's wording). */
const probeLines: Record<Outcome, RegExp> = {
  SERVING: /^status: SERVING$/m,
  NOT_SERVING: /^service unhealthy \(responded with "NOT_SERVING"\)$/m,
  UNKNOWN: /^service unhealthy \(responded with "UNKNOWN"\)$/m,
  SERVICE_UNKNOWN: /^service unhealthy \(responded with "SERVICE_UNKNOWN"\)$/m,
  NOT_FOUND: /^error: health rpc failed: rpc error: code = NotFound/m,
  UNIMPLEMENTED: /^error: this server does not implement the grpc health protocol/m,
  DEADLINE_EXCEEDED: /^timeout: health rpc did not complete within 300ms$/m,
  RPC_ERROR: /^error: health rpc failed: rpc error: code = Internal desc = internal trouble$/m,
  CONNECTION_FAILED: /^error: failed to connect service at ".*": .*ECONNREFUSED/m,
};

const runcliLines: Record<Outcome, RegExp> = {
  SERVING: /^svc SERVING$/m,
  NOT_SERVING: /^HealthCheck Probe Error: service "svc" failed with reason: NOT_SERVING$/m,
  UNKNOWN: /failed with reason: UNKNOWN$/m,
  SERVICE_UNKNOWN: /failed with reason: SERVICE_UNKNOWN$/m,
  NOT_FOUND: /^HealthCheck Probe Error: service "svc" not found/m,
  UNIMPLEMENTED: /^HealthCheck Probe Error: this server does not implement/m,
  DEADLINE_EXCEEDED: /^HealthCheck Probe Error: timeout: health rpc did not complete within 300ms/m,
  RPC_ERROR: /^HealthCheck Probe Error: health rpc failed: .*code = Internal/m,
  CONNECTION_FAILED: /^HealthCheck Probe Error: failed to connect service at .*ECONNREFUSED/m,
};

function assertClean(r: RunResult): void {
  // No stack traces or unhandled rejections ever reach the user.
  assert(!/\n\s+at /.test(r.stderr), `stack trace in stderr:\n${r.stderr}`);
  assert(!/Uncaught|unhandled/i.test(r.stderr), `unhandled error in stderr:\n${r.stderr}`);
}

for (const tls of ["none", "tls", "mtls"] as const) {
  Deno.test({
    name: `every status-table row gives its exit code in probe and runcli mode (${tls})`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      for (const outcome of Object.keys(scenarios) as Outcome[]) {
        const fixture = await HealthFixture.start({ tls });
        // IP-literal target: TLS must verify the certificate's IP SAN (Deno's node:tls trap).
        let target = fixture.target;
        scenarios[outcome](fixture);
        if (outcome === "CONNECTION_FAILED") {
          await fixture.stop();
          target = `127.0.0.1:${closedPort()}`;
        }
        await t.step(outcome, async () => {
          const rows = statusTable[outcome];
          // Short only where the timeout is what is tested: on a busy machine a 300 ms budget
          // turns an upstream's answer into DEADLINE_EXCEEDED.
          const rpcTimeout = outcome === "DEADLINE_EXCEEDED" ? "300ms" : "30s";
          const common = [`-rpc-timeout=${rpcTimeout}`, "-connect-timeout=30s"];
          const [probe, runcli] = await Promise.all([
            runMain(["-addr", target, "-service=svc", ...common, ...transportFlags(tls, "probe")]),
            runMain([
              "-runcli",
              `-grpcaddr=${target}`,
              "-service-name",
              "svc",
              ...common,
              ...transportFlags(tls, "proxy"),
            ]),
          ]);
          assertEquals(probe.code, rows.probe, `probe stderr: ${probe.stderr}`);
          assertMatch(probe.stderr, probeLines[outcome]);
          assertEquals(runcli.code, rows.runcli, `runcli stderr: ${runcli.stderr}`);
          assertMatch(runcli.stderr, runcliLines[outcome]);
          assertEquals(probe.stdout, "");
          assertClean(probe);
          assertClean(runcli);
        });
        if (outcome !== "CONNECTION_FAILED") await fixture.stop();
      }
    },
  });
}

Deno.test({
  name: "connect timeout: an upstream that accepts TCP but never speaks HTTP/2",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const silent = silentTcpServer();
    try {
      const probe = await runMain(["-addr", `127.0.0.1:${silent.port}`, "-connect-timeout=400ms"]);
      assertEquals(probe.code, 2, probe.stderr);
      assertMatch(probe.stderr, /^timeout: failed to connect service ".*" within 400ms$/m);
      const runcli = await runMain([
        "-runcli",
        "-grpcaddr",
        `127.0.0.1:${silent.port}`,
        "-connect-timeout=400ms",
      ]);
      assertEquals(runcli.code, 1, runcli.stderr);
      assert(silent.connections() >= 2);
    } finally {
      silent.close();
    }
  },
});

Deno.test({
  name: "TLS failures are connection failures with their real cause",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const fixture = await HealthFixture.start({ tls: "tls" });
    const mtls = await HealthFixture.start({ tls: "mtls" });
    const plain = await HealthFixture.start();
    const noIp = await HealthFixture.start({ tls: "tls", serverCert: "noip-server" });
    try {
      const cases: [string, string[], RegExp][] = [
        ["unknown CA (system roots)", ["-addr", fixture.target, "-tls"], /certificate/i],
        [
          "wrong server name",
          [
            "-addr",
            fixture.target,
            "-tls",
            `-tls-ca-cert=${cert("ca.pem")}`,
            "-tls-server-name=wrong.example",
          ],
          /wrong\.example/,
        ],
        [
          "IP not in the certificate",
          ["-addr", noIp.target, "-tls", `-tls-ca-cert=${cert("ca.pem")}`],
          /127\.0\.0\.1/,
        ],
        [
          "CA of another issuer",
          ["-addr", fixture.target, "-tls", `-tls-ca-cert=${cert("other-ca.pem")}`],
          /certificate/i,
        ],
        [
          "mTLS server, no client certificate",
          ["-addr", mtls.target, "-tls", `-tls-ca-cert=${cert("ca.pem")}`],
          /failed to connect|certificate|handshake|alert|closed|reset|socket/i,
        ],
        ["TLS client, plaintext server", ["-addr", plain.target, "-tls", "-tls-no-verify"], /./],
        ["plaintext client, TLS server", ["-addr", fixture.target], /./],
      ];
      for (const [name, args, cause] of cases) {
        await t.step(name, async () => {
          const r = await runMain([...args, "-connect-timeout=2s"]);
          assert(r.code === 2 || r.code === 3, `exit ${r.code}: ${r.stderr}`);
          if (r.code === 2) assertMatch(r.stderr, /failed to connect service/);
          assertMatch(r.stderr, cause);
          assertClean(r);
        });
      }
      await t.step("-tls-no-verify accepts an unknown CA", async () => {
        const r = await runMain(["-addr", fixture.target, "-tls", "-tls-no-verify"]);
        assertEquals(r.code, 0, r.stderr);
      });
      await t.step("-tls-server-name localhost verifies by that name", async () => {
        const r = await runMain([
          "-addr",
          noIp.target,
          "-tls",
          `-tls-ca-cert=${cert("ca.pem")}`,
          "-tls-server-name=localhost",
        ]);
        assertEquals(r.code, 0, r.stderr);
      });
    } finally {
      await Promise.all([fixture.stop(), mtls.stop(), plain.stop(), noIp.stop()]);
    }
  },
});

Deno.test({
  name: "targets: :port, localhost, [::1], unix:///abs, unix:rel, dns:///",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const v4 = await HealthFixture.start({ host: "127.0.0.1" });
    const v6 = await HealthFixture.start({ host: "::1" });
    const dir = Deno.makeTempDirSync({ dir: "/tmp" });
    const unix = await HealthFixture.start({ unixPath: `${dir}/health.sock` });
    try {
      const targets: [string, string, string[]][] = [
        [":port", `:${v4.port}`, []],
        ["localhost:port", `localhost:${v4.port}`, []],
        ["[::1]:port", `[::1]:${v6.port}`, []],
        ["dns:///localhost:port", `dns:///localhost:${v4.port}`, []],
        ["unix:///abs", `unix://${dir}/health.sock`, []],
      ];
      for (const [name, addr] of targets) {
        await t.step(name, async () => {
          const r = await runMain(["-addr", addr]);
          assertEquals(r.code, 0, r.stderr);
          assertMatch(r.stderr, /^status: SERVING$/m);
        });
      }
      await t.step("unix:relative/path", async () => {
        const r = await runMain(["-addr", "unix:health.sock"], { cwd: dir });
        assertEquals(r.code, 0, r.stderr);
      });
      await t.step("TLS to [::1] verifies the IPv6 SAN", async () => {
        const tls6 = await HealthFixture.start({ host: "::1", tls: "tls" });
        try {
          const r = await runMain(["-addr", tls6.target, "-tls", `-tls-ca-cert=${cert("ca.pem")}`]);
          assertEquals(r.code, 0, r.stderr);
        } finally {
          await tls6.stop();
        }
      });
    } finally {
      await Promise.all([v4.stop(), v6.stop(), unix.stop()]);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "-rpc-header, -user-agent and -gzip reach the upstream; proxy variables do not apply",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const proxy = silentTcpServer();
    try {
      const proxyUrl = `http://127.0.0.1:${proxy.port}`;
      const r = await runMain([
        "-addr",
        fixture.target,
        "-rpc-header",
        "x-team: payments",
        "-rpc-header=Authorization: Bearer t0ken",
        "-user-agent=kubelet-probe/1.0",
        "-gzip",
      ], {
        env: { grpc_proxy: proxyUrl, http_proxy: proxyUrl, https_proxy: proxyUrl },
      });
      assertEquals(r.code, 0, r.stderr);
      const md = fixture.lastMetadata;
      assertEquals(md["x-team"], "payments");
      assertEquals(md["authorization"], "Bearer t0ken");
      assertStringIncludes(md["user-agent"], "kubelet-probe/1.0");
      assertEquals(md["grpc-encoding"], "gzip");
      // What a proxy would get is a CONNECT for the upstream (a stray connection from an earlier
      // test's client to a reused port sends something else).
      const viaProxy = proxy.firstBytes().filter((b) => /^CONNECT |grpc\.health/.test(b));
      assertEquals(viaProxy, [], "the proxy was used");
    } finally {
      proxy.close();
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "default user agents: grpc_health_probe in probe mode, grpc_health_proxy in runcli",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const fixture = await HealthFixture.start();
    try {
      assertEquals((await runMain(["-addr", fixture.target])).code, 0);
      assertMatch(fixture.lastMetadata["user-agent"], /^grpc_health_probe/);
      assertEquals((await runMain(["-runcli", "-grpcaddr", fixture.target])).code, 0);
      assertMatch(fixture.lastMetadata["user-agent"], /^grpc_health_proxy/);
    } finally {
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "SIGTERM during a slow check cancels it promptly",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const fixture = await HealthFixture.start();
    fixture.behavior = "hang";
    try {
      const started = Date.now();
      const r = await runMain(["-addr", fixture.target, "-rpc-timeout=30s"], {
        onStart: (child) => {
          // Signal once the RPC is surely under way.
          const poll = setInterval(() => {
            if (fixture.checkCount() > 0) {
              clearInterval(poll);
              child.kill("SIGTERM");
            }
          }, 20);
        },
      });
      assertEquals(r.code, 3, r.stderr);
      assertMatch(r.stderr, /^cancellation received$/m);
      assertMatch(r.stderr, /code = Canceled/);
      assert(Date.now() - started < 20_000, "the check was not cancelled");
      assertClean(r);
    } finally {
      await fixture.stop();
    }
  },
});

Deno.test("several services: exit 0 only when all are SERVING, else the worst", async () => {
  const fixture = await HealthFixture.start({ statuses: { a: "SERVING", b: "SERVING" } });
  try {
    const ok = await runMain(["-addr", fixture.target, "-service=a,b"]);
    assertEquals(ok.code, 0, ok.stderr);
    fixture.setStatus("b", "NOT_SERVING");
    const bad = await runMain(["-addr", fixture.target, "-service", "a", "-service", "b"]);
    assertEquals(bad.code, 4, bad.stderr);
    assertMatch(bad.stderr, /^service "b": service unhealthy/m);
    fixture.removeService("a");
    const worse = await runMain(["-runcli", "-grpcaddr", fixture.target, "-service-name=a,b"]);
    assertEquals(worse.code, 3, worse.stderr);
  } finally {
    await fixture.stop();
  }
});

Deno.test("-version, -h and invalid arguments", async (t) => {
  await t.step("-version prints the version and exits 0", async () => {
    const r = await runMain(["-version"]);
    assertEquals(r.code, 0);
    assertMatch(r.stdout, /^grpc_health_proxy \d+\.\d+\.\d+ \(deno [\d.]+, grpc-js [\d.]+\)\n$/);
  });
  await t.step("-h prints usage to stdout and exits 0", async () => {
    for (const flag of ["-h", "-help", "--help"]) {
      const r = await runMain([flag]);
      assertEquals(r.code, 0);
      assertStringIncludes(r.stdout, "-addr");
      assertStringIncludes(r.stdout, "-http-listen-addr");
    }
  });
  await t.step("probe mode: exit 1 with one line", async () => {
    for (
      const args of [
        ["-addr"],
        ["-addr=x:1", "-bogus"],
        ["-addr=x:1", "-tls-ca-cert=/x"],
        ["-addr=x:1", "-connect-timeout=0"],
        ["-addr=x:1", "-alts"],
      ]
    ) {
      const r = await runMain(args);
      assertEquals(r.code, 1, `${args}: ${r.stderr}`);
      assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
      assertMatch(r.stderr, /^error: /);
    }
  });
  await t.step("unreadable CA file: invalid argument naming the file", async () => {
    const r = await runMain(["-addr=x:1", "-tls", "-tls-ca-cert=/nonexistent/ca.pem"]);
    assertEquals(r.code, 1, r.stderr);
    assertMatch(
      r.stderr,
      /^error: cannot read -tls-ca-cert file "\/nonexistent\/ca.pem": ENOENT$/m,
    );
  });
  await t.step("runcli and server mode: exit 255", async () => {
    assertEquals((await runMain(["-runcli"])).code, 255);
    assertEquals((await runMain(["-runcli", "-grpcaddr=x:1", "-rpc-timeout=abc"])).code, 255);
    assertEquals((await runMain(["-grpcaddr=x:1", "-https-listen-cert=a"])).code, 255);
  });
});

Deno.test({
  name: "invoked as grpc_health_probe: probe mode with probe exit codes",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const fixture = await HealthFixture.start({ statuses: { "": "NOT_SERVING" } });
    const lines: string[] = [];
    const io = { stdout: (s: string) => lines.push(s), stderr: (s: string) => lines.push(s) };
    try {
      // -grpcaddr alone would be server mode; the name makes it a probe.
      const code = await main(["-grpcaddr", fixture.target], "/bin/grpc_health_probe", io);
      assertEquals(code, 4, lines.join(""));
      assertEquals(await main([], "grpc_health_probe.exe", io), 1);
    } finally {
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "a binary invoked through a symlink named grpc_health_probe is in probe mode (argv[0])",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "ghp-link-" });
    const fixture = await HealthFixture.start();
    try {
      // The deno executable run through the link stands in for the compiled binary: the process
      // sees the link as argv[0], while Deno.execPath() resolves it.
      const link = `${dir}/grpc_health_probe`;
      await Deno.symlink(Deno.execPath(), link);
      // Server mode never exits by itself: the generous bound turns that into a failed assertion.
      const run = (args: string[]) =>
        new Deno.Command(link, {
          args: ["run", ...programPermissions, `${root}main.ts`, ...args],
          env: { NO_COLOR: "1" },
          stdin: "null",
          signal: AbortSignal.timeout(60_000),
        }).output();
      const dec = new TextDecoder();
      // -grpcaddr alone would be server mode (serving until stopped); through the link it is a
      // probe that answers and exits.
      const ok = await run([`-grpcaddr=${fixture.target}`]);
      assertEquals(ok.code, 0, dec.decode(ok.stderr));
      assertMatch(dec.decode(ok.stderr), /^status: SERVING$/m);
      const invalid = await run([]);
      assertEquals(invalid.code, 1, dec.decode(invalid.stderr)); // 255 in server mode
    } finally {
      await fixture.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
