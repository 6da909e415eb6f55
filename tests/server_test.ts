/**
 * Server mode end to end: the real listeners, the real upstream channel and the real fixture
 * gRPC server, exercised with fetch and curl; lifecycle through the real `main.ts`.
 */

import {
  assert,
  assertEquals,
  assertEventually,
  assertMatch,
  assertStringIncludes,
} from "./assert.ts";
import { HealthFixture } from "./fixture/health_server.ts";
import { spawnMain, stopMain } from "./fixture/main_process.ts";
import { cert, certText, closedPort, configFrom, root, serveInFront } from "./helpers.ts";
import { capturingLogger, silentLogger } from "../lib/log.ts";
import { type RunningServer, startServer } from "../lib/server.ts";
import { type Outcome, statusTable } from "../lib/status.ts";

const serve = serveInFront;
const config = configFrom;

const opts = { sanitizeOps: false, sanitizeResources: false };

async function get(url: string, init?: RequestInit & { client?: Deno.HttpClient }) {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text(), headers: res.headers };
}

const scenarios: Record<Outcome, (f: HealthFixture) => Promise<void> | void> = {
  SERVING: (f) => f.setStatus("svc", "SERVING"),
  NOT_SERVING: (f) => f.setStatus("svc", "NOT_SERVING"),
  UNKNOWN: (f) => f.setStatus("svc", "UNKNOWN"),
  SERVICE_UNKNOWN: (f) => f.setStatus("svc", "SERVICE_UNKNOWN"),
  NOT_FOUND: (f) => f.removeService("svc"),
  UNIMPLEMENTED: (f) => void (f.behavior = "unimplemented"),
  DEADLINE_EXCEEDED: (f) => void (f.behavior = "hang"),
  RPC_ERROR: (f) => void (f.behavior = { code: 13, details: "secret internal detail" }),
  CONNECTION_FAILED: (f) => f.stop(),
};

Deno.test({
  name: "every status-table row gives its HTTP status and body",
  ...opts,
  fn: async (t) => {
    for (const outcome of Object.keys(scenarios) as Outcome[]) {
      await t.step(outcome, async () => {
        const fixture = await HealthFixture.start();
        const server = await serve(fixture, [
          "-service-name=svc",
          ...(outcome === "DEADLINE_EXCEEDED" ? ["-rpc-timeout=300ms"] : []),
        ]);
        try {
          await scenarios[outcome](fixture);
          const text = await get(server.health.url + "/");
          assertEquals(text.status, statusTable[outcome].http, text.body);
          assertEquals(text.body.trim(), `svc ${outcome}`);
          assertStringIncludes(text.headers.get("content-type") ?? "", "text/plain");
          // No upstream internals (addresses, error text) in bodies.
          assert(!text.body.includes("127.0.0.1") && !text.body.includes("secret"), text.body);
          const json = await get(server.health.url + "/", {
            headers: { accept: "application/json" },
          });
          assertEquals(json.status, statusTable[outcome].http);
          const parsed = JSON.parse(json.body);
          assertEquals([parsed.service, parsed.status], ["svc", outcome]);
          assertEquals("reason" in parsed, outcome !== "SERVING");
          assert(!json.body.includes("secret") && !json.body.includes(String(fixture.port)));
        } finally {
          await server.stop();
          await fixture.stop();
        }
      });
    }
  },
});

Deno.test({
  name: "flips are seen on the next request; a stopped upstream is seen and its return too",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const server = await serve(fixture);
    try {
      assertEquals((await get(server.health.url)).status, 200);
      fixture.setStatus("", "NOT_SERVING");
      const flipped = await get(server.health.url);
      assertEquals([flipped.status, flipped.body], [503, "NOT_SERVING\n"]);
      fixture.setStatus("", "SERVING");
      assertEquals((await get(server.health.url)).status, 200);

      await fixture.stop();
      const down = await get(server.health.url);
      assertEquals([down.status, down.body], [503, "CONNECTION_FAILED\n"]);
      await fixture.restart();
      // The channel's tuned backoff sees the restarted upstream within about a second; 10 s
      // leaves a busy machine room and still fails grpc-js's default backoff (up to 120 s).
      await assertEventually(
        async () => (await get(server.health.url)).status === 200,
        "the restarted upstream to be seen",
        10_000,
        50,
      );
    } finally {
      await server.stop();
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "one long-lived channel; concurrent requests share one in-flight RPC",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const server = await serve(fixture);
    try {
      await get(server.health.url);
      fixture.resetCounts();
      fixture.delayMs = 150; // well within the RPC timeout
      const answers = await Promise.all(
        Array.from({ length: 50 }, () => get(server.health.url)),
      );
      assert(answers.every((a) => a.status === 200));
      assert(fixture.checkCount() <= 3, `${fixture.checkCount()} RPCs for 50 requests`);
    } finally {
      await server.stop();
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "service selection: ?serviceName=, 403 when fixed, 400 for bad names, 404/405",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start({ statuses: { "": "SERVING", a: "NOT_SERVING" } });
    const free = await serve(fixture, ["-http-listen-path=/healthz"]);
    const fixed = await serve(fixture, ["-service-name=a"]);
    try {
      const url = free.health.url;
      assertEquals((await get(`${url}/healthz?serviceName=a`)).status, 503);
      assertEquals(fixture.checkCount("a"), 1);
      assertEquals((await get(`${url}/healthz`)).status, 200);
      assertEquals((await get(`${url}/healthz?serviceName=missing`)).status, 404);
      assertEquals((await get(`${url}/healthz?serviceName=${"x".repeat(300)}`)).status, 400);
      assertEquals((await get(`${url}/healthz?serviceName=a%00b`)).status, 400);
      assertEquals((await get(`${url}/healthz?serviceName=%zz`)).status, 400);
      const other = await get(`${url}/other`);
      assertEquals(other.status, 404);
      assert(!/SERVING|UNKNOWN/.test(other.body), other.body);
      assertEquals((await get(`${url}/healthz`, { method: "POST" })).status, 405);
      const head = await fetch(`${url}/healthz`, { method: "HEAD" });
      assertEquals([head.status, await head.text()], [200, ""]);

      assertEquals((await get(`${fixed.health.url}/?serviceName=b`)).status, 403);
      assertEquals((await get(`${fixed.health.url}/?serviceName=a`)).status, 503);
      assertEquals((await get(`${fixed.health.url}/`)).body, "a NOT_SERVING\n");
    } finally {
      await Promise.all([free.stop(), fixed.stop()]);
      await fixture.stop();
    }
  },
});

/** Runs curl; undefined (after saying so) when curl is not installed. */
async function curl(args: string[]): Promise<{ code: number; out: string } | undefined> {
  try {
    const out = await new Deno.Command("curl", { args: ["-sS", ...args], stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      console.log("SKIPPED (curl not installed): curl checks");
      return undefined;
    }
    throw err;
  }
}

Deno.test({
  name: "plain listener: HTTP/1.1 and h2c prior knowledge (curl)",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const server = await serve(fixture);
    try {
      const h2c = await curl([
        "--http2-prior-knowledge",
        "-w",
        "%{http_version} %{http_code}",
        server.health.url,
      ]);
      if (h2c) assertEquals(h2c.out, "SERVING\n2 200");
      const h1 = await curl(["--http1.1", "-w", "%{http_version} %{http_code}", server.health.url]);
      if (h1) assertEquals(h1.out, "SERVING\n1.1 200");
      const head = await curl(["--head", server.health.url]);
      if (head) assertMatch(head.out, /^HTTP\/1\.1 200/);
    } finally {
      await server.stop();
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "HTTPS listener (ALPN h2 and http/1.1) and mTLS listener",
  ...opts,
  fn: async (t) => {
    const fixture = await HealthFixture.start();
    const tlsFlags = [
      `-https-listen-cert=${cert("server.pem")}`,
      `-https-listen-key=${cert("server-key.pem")}`,
    ];
    const https = await serve(fixture, tlsFlags);
    const mtls = await serve(fixture, [
      ...tlsFlags,
      "-https-listen-verify",
      `-https-listen-ca=${cert("ca.pem")}`,
    ]);
    const url = (s: RunningServer) => `https://localhost:${s.health.port}/`;
    try {
      await t.step("HTTPS with the test CA", async () => {
        const client = Deno.createHttpClient({ caCerts: [certText("ca.pem")] });
        assertEquals((await get(url(https), { client })).status, 200);
        client.close();
        const h2 = await curl([
          "--http2",
          "--cacert",
          cert("ca.pem"),
          "-w",
          " %{http_version}",
          url(https),
        ]);
        if (h2) assertEquals(h2.out, "SERVING\n 2");
        const h1 = await curl([
          "--http1.1",
          "--cacert",
          cert("ca.pem"),
          "-w",
          " %{http_version}",
          url(https),
        ]);
        if (h1) assertEquals(h1.out, "SERVING\n 1.1");
      });
      await t.step(
        "mTLS: a client certificate from the CA is accepted (h2 and http/1.1)",
        async () => {
          const client = Deno.createHttpClient({
            caCerts: [certText("ca.pem")],
            cert: certText("client.pem"),
            key: certText("client-key.pem"),
          });
          assertEquals((await get(url(mtls), { client })).status, 200);
          client.close();
          for (const v of ["--http2", "--http1.1"]) {
            const r = await curl([
              v,
              "--cacert",
              cert("ca.pem"),
              "--cert",
              cert("client.pem"),
              "--key",
              cert("client-key.pem"),
              url(mtls),
            ]);
            if (r) assertEquals(r.out, "SERVING\n");
          }
        },
      );
      await t.step("mTLS: no certificate, another CA's or an expired one is refused", async () => {
        for (const who of [undefined, "other-client", "expired-client"]) {
          const client = Deno.createHttpClient({
            caCerts: [certText("ca.pem")],
            ...(who ? { cert: certText(`${who}.pem`), key: certText(`${who}-key.pem`) } : {}),
          });
          let refused = false;
          try {
            await get(url(mtls), { client });
          } catch {
            refused = true;
          }
          client.close();
          assert(refused, `${who ?? "no certificate"} was not refused`);
        }
      });
    } finally {
      await Promise.all([https.stop(), mtls.stop()]);
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "metrics: grpc_health_proxy's names and labels after traffic",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start({ statuses: { "": "SERVING", a: "NOT_SERVING" } });
    const server = await serve(fixture);
    try {
      await get(server.health.url);
      await get(`${server.health.url}/?serviceName=a`);
      for (let i = 0; i < 20; i++) await get(`${server.health.url}/?serviceName=rand${i}`);
      const m = await get(`${server.metrics!.url}/metrics`);
      assertEquals(m.status, 200);
      assertMatch(m.body, /^grpc_health_check_seconds_count\{path="\/"\} 22$/m);
      assertMatch(
        m.body,
        /^grpc_health_check_service_requests\{code="SERVING",service_name=""\} 1$/m,
      );
      // Unconfigured names collapse to one label value.
      assertMatch(
        m.body,
        /^grpc_health_check_service_requests\{code="NOT_SERVING",service_name="other"\} 1$/m,
      );
      assertMatch(
        m.body,
        /^grpc_health_check_service_requests\{code="NotFound",service_name="other"\} 20$/m,
      );
      assertMatch(
        m.body,
        /^grpc_health_check_service_duration_seconds_bucket\{le="\+Inf",service_name=""\} 1$/m,
      );
      assertMatch(m.body, /^process_cpu_seconds_total /m);
      assert(!m.body.includes("rand1"), "unbounded service_name label");
    } finally {
      await server.stop();
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "a metrics port that cannot bind is logged and health serving goes on",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const lines: string[] = [];
    const logger = { ...silentLogger, error: (msg: string) => void lines.push(msg) };
    const server = await startServer(
      config([
        `-grpcaddr=${fixture.target}`,
        "-http-listen-addr=127.0.0.1:0",
        `-metrics-http-listen-addr=127.0.0.1:${(taken.addr as Deno.NetAddr).port}`,
      ]),
      logger,
    );
    try {
      assertEquals(server.metrics, undefined);
      assertEquals(lines, ["metrics listener not started"]);
      assertEquals((await get(server.health.url)).status, 200);
    } finally {
      taken.close();
      await server.stop();
      await fixture.stop();
    }
  },
});

/** Starts the real program in server mode; resolves with its health URL once it listens. */
async function spawnServer(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      `${root}main.ts`,
      "-jsonLog",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let url: string | undefined;
  while (url === undefined) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      const entry = JSON.parse(line);
      if (entry.msg === "listening" && url === undefined) url = entry.url;
    }
  }
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return lines;
      lines.push(...value.split("\n").filter(Boolean));
    }
  })();
  return { child, url, lines, rest };
}

Deno.test({
  name: "main.ts server mode: SIGTERM drains in-flight requests and exits 0",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const proc = await spawnServer([
      `-grpcaddr=${fixture.target}`,
      "-http-listen-addr=127.0.0.1:0",
      "-metrics-http-listen-addr=",
    ]);
    try {
      assert(proc.url, "no listening line");
      assertEquals((await get(proc.url)).status, 200);
      fixture.delayMs = 500;
      const inFlight = get(proc.url);
      while (fixture.checkCount() < 2) await new Promise((r) => setTimeout(r, 10));
      proc.child.kill("SIGTERM");
      const answer = await inFlight;
      assertEquals(answer.status, 200);
      const status = await proc.child.status;
      assertEquals(status.code, 0);
      const lines = await proc.rest;
      assert(lines.some((l) => JSON.parse(l).msg === "shutting down"), lines.join("\n"));
      await proc.child.stdout.cancel();
    } finally {
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "main.ts server mode: a taken port or a bad certificate is one line and exit 255",
  ...opts,
  fn: async () => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (taken.addr as Deno.NetAddr).port;
    try {
      for (
        const [args, msg] of [
          [[`-http-listen-addr=127.0.0.1:${port}`], /address already in use/],
          [[
            `-http-listen-addr=127.0.0.1:0`,
            `-https-listen-cert=${cert("ca.pem")}`,
            `-https-listen-key=${cert("server-key.pem")}`,
          ], /key does not match/],
          [[
            `-http-listen-addr=127.0.0.1:0`,
            `-https-listen-cert=/nope.pem`,
            `-https-listen-key=/nope.pem`,
          ], /cannot read -https-listen-cert file "\/nope.pem"/],
        ] as [string[], RegExp][]
      ) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--allow-net",
            "--allow-read",
            "--allow-write",
            "--allow-env",
            `${root}main.ts`,
            `-grpcaddr=127.0.0.1:${closedPort()}`,
            "-metrics-http-listen-addr=",
            ...args,
          ],
          stdout: "piped",
          stderr: "piped",
          env: { NO_COLOR: "1" },
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assertEquals(out.code, 255, stderr);
        assertMatch(stderr, msg);
        assert(!/\n\s+at /.test(stderr), stderr);
      }
    } finally {
      taken.close();
    }
  },
});

Deno.test({
  name: "main.ts server mode: SIGHUP is logged and ignored; SIGTERM still stops it",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const proc = await spawnMain([
      `-grpcaddr=${fixture.target}`,
      "-http-listen-addr=127.0.0.1:0",
      "-metrics-http-listen-addr=",
    ]);
    try {
      assert(proc.urls[0], proc.stderr.join("\n"));
      proc.child.kill("SIGHUP");
      await assertEventually(
        () => proc.stderr.some((l) => l.includes("SIGHUP ignored")),
        "the SIGHUP line",
      );
      assertEquals((await get(proc.urls[0])).status, 200);
      const out = await stopMain(proc);
      assertEquals(out.code, 0, out.stderr);
      assertEquals(out.stderr.split("SIGHUP ignored").length, 2, "one line per SIGHUP");
    } finally {
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "server mode on a Deno known to abort on GOAWAY (2.9.5) warns once and serves; 2.9.3 not",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    try {
      for (const [denoVersion, warned] of [["2.9.5", true], ["2.9.3", false]] as const) {
        const { logger, lines } = capturingLogger();
        const server = await startServer(
          configFrom([
            `-grpcaddr=${fixture.target}`,
            "-http-listen-addr=127.0.0.1:0",
            "-metrics-http-listen-addr=",
          ]),
          logger,
          { denoVersion },
        );
        try {
          const warnings = JSON.stringify(lines).match(/aborts inside nghttp2/g) ?? [];
          assertEquals(warnings.length, warned ? 1 : 0, JSON.stringify(lines));
          assertEquals((await get(server.health.url)).status, 200);
        } finally {
          await server.stop();
        }
      }
    } finally {
      await fixture.stop();
    }
  },
});
