/**
 * Security (the reliability issue's "Security" part), end to end: where the listeners bind by
 * default, what bodies may say, what logs must never say, the permissions each mode needs, and
 * mTLS refusal through the real program.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { HealthFixture } from "./fixture/health_server.ts";
import { spawnMain, stopMain } from "./fixture/main_process.ts";
import { cert, certText, closedPort, configFrom, root } from "./helpers.ts";
import { capturingLogger, silentLogger } from "../lib/log.ts";
import { startServer } from "../lib/server.ts";
import { type Outcome, statusTable } from "../lib/status.ts";

const config = configFrom;

const opts = { sanitizeOps: false, sanitizeResources: false };

const STACK_TRACE = /\n\s+at /;

Deno.test({
  name: "defaults bind loopback only",
  ...opts,
  fn: async () => {
    const defaults = config(["-grpcaddr=x:1"]);
    assertEquals(
      [defaults.httpListenAddr, defaults.metricsHttpListenAddr],
      ["localhost:8080", "localhost:9000"],
    );
    const server = await startServer(
      config([
        `-grpcaddr=127.0.0.1:${closedPort()}`,
        "-http-listen-addr=localhost:0",
        "-metrics-http-listen-addr=localhost:0",
      ]),
      silentLogger,
    );
    try {
      for (const listener of [server.health, server.metrics!]) {
        assert(
          ["127.0.0.1", "::1"].includes(listener.hostname),
          `bound to ${listener.hostname}, not loopback`,
        );
        // And really not reachable on this host's other addresses.
        const others = Deno.networkInterfaces().filter((i) =>
          i.family === "IPv4" && !i.address.startsWith("127.")
        );
        for (const iface of others) {
          let refused = false;
          try {
            (await Deno.connect({ hostname: iface.address, port: listener.port })).close();
          } catch (e) {
            refused = e instanceof Deno.errors.ConnectionRefused;
          }
          assert(refused, `${iface.address}:${listener.port} accepted a connection`);
        }
        if (others.length === 0) console.log("(no non-loopback IPv4 address to try)");
      }
    } finally {
      await server.stop();
    }
  },
});

/** What the upstream says in each scenario: every error carries the secret. */
const SECRET = "secret-detail 10.1.2.3";
const scenarios: [string, Outcome, (f: HealthFixture) => Promise<void> | void][] = [
  ["SERVING", "SERVING", (f) => f.setStatus("svc", "SERVING")],
  ["NOT_SERVING", "NOT_SERVING", (f) => f.setStatus("svc", "NOT_SERVING")],
  ["UNKNOWN", "UNKNOWN", (f) => f.setStatus("svc", "UNKNOWN")],
  ["SERVICE_UNKNOWN", "SERVICE_UNKNOWN", (f) => f.setStatus("svc", "SERVICE_UNKNOWN")],
  ["NOT_FOUND", "NOT_FOUND", (f) => void (f.behavior = { code: 5, details: SECRET })],
  ["UNIMPLEMENTED", "UNIMPLEMENTED", (f) => void (f.behavior = { code: 12, details: SECRET })],
  ["hang", "DEADLINE_EXCEEDED", (f) => void (f.behavior = "hang")],
  ["UNKNOWN error", "RPC_ERROR", (f) => void (f.behavior = { code: 2, details: SECRET })],
  ["INTERNAL", "RPC_ERROR", (f) => void (f.behavior = { code: 13, details: SECRET })],
  ["UNAVAILABLE", "RPC_ERROR", (f) => void (f.behavior = { code: 14, details: SECRET })],
  ["UNAUTHENTICATED", "RPC_ERROR", (f) => void (f.behavior = { code: 16, details: SECRET })],
  ["stopped", "CONNECTION_FAILED", (f) => f.stop()],
];

Deno.test({
  name: "bodies never carry upstream addresses, error details or unescaped request input",
  ...opts,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "ghp-sec-" });
    try {
      for (const transport of ["tcp", "unix"] as const) {
        await t.step(
          `${transport} upstream: every outcome, text and JSON, both paths`,
          async () => {
            for (const [i, [name, outcome, setUp]] of scenarios.entries()) {
              // A fresh socket per fixture: nothing of the previous scenario can answer.
              const fixture = await HealthFixture.start(
                transport === "unix" ? { unixPath: `${dir}/health-${i}.sock` } : {},
              );
              const { logger, lines } = capturingLogger();
              const server = await startServer(
                config([
                  `-grpcaddr=${fixture.target}`,
                  "-http-listen-addr=127.0.0.1:0",
                  "-metrics-http-listen-addr=",
                  "-http-liveness-path=/livez",
                  // Short only where the timeout is what is tested: a busy machine must not
                  // turn an upstream's error into DEADLINE_EXCEEDED.
                  `-rpc-timeout=${outcome === "DEADLINE_EXCEEDED" ? "300ms" : "30s"}`,
                ]),
                logger,
              );
              // What must not appear: the details and the upstream's address in every form.
              const forbidden = [
                SECRET,
                "secret",
                "10.1.2.3",
                fixture.target,
                ...(transport === "unix" ? [dir, "health-", ".sock", "unix:"] : ["127.0.0.1"]),
                ...(fixture.port ? [String(fixture.port)] : []),
              ];
              try {
                await setUp(fixture);
                for (const path of ["/", "/livez"]) {
                  for (const accept of ["text/plain", "application/json"]) {
                    const res = await fetch(`${server.health.url}${path}?serviceName=svc`, {
                      headers: { accept },
                    });
                    const body = await res.text();
                    const headers = [...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n");
                    const where = `${name} ${path} ${accept}: ${res.status} ${body}`;
                    if (path === "/") assertEquals(res.status, statusTable[outcome].http, where);
                    assert(body.length < 1024, where);
                    assertMatch(body, new RegExp(outcome), where);
                    for (const f of forbidden) {
                      assert(!body.includes(f), `${where} contains ${JSON.stringify(f)}`);
                      assert(!headers.includes(f), `${where} headers contain ${JSON.stringify(f)}`);
                    }
                    if (accept === "application/json") JSON.parse(body);
                  }
                }
                // Not vacuous: the secret reached the proxy (its log has it, as it should).
                if (name === "INTERNAL") {
                  assert(
                    JSON.stringify(lines).includes(SECRET),
                    "the upstream detail was not seen",
                  );
                }
              } finally {
                await server.stop();
                await fixture.stop();
              }
            }
          },
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "request input with markup is escaped in text and JSON bodies, refused names not echoed",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start({
      statuses: { "": "SERVING", "<script>alert('x')&\"</script>": "NOT_SERVING" },
    });
    const free = await startServer(
      config([
        `-grpcaddr=${fixture.target}`,
        "-http-listen-addr=127.0.0.1:0",
        "-metrics-http-listen-addr=",
      ]),
      silentLogger,
    );
    const fixed = await startServer(
      config([
        `-grpcaddr=${fixture.target}`,
        "-http-listen-addr=127.0.0.1:0",
        "-metrics-http-listen-addr=",
        "-service-name=svc",
      ]),
      silentLogger,
    );
    const markup = /[<>"'&]/;
    try {
      // Known upstream (503) and unknown upstream (404): the name is in the body both times.
      for (const name of ["<script>alert('x')&\"</script>", "<img/src=x/onerror=alert(1)>"]) {
        const q = encodeURIComponent(name);
        const text = await fetch(`${free.health.url}/?serviceName=${q}`);
        const textBody = await text.text();
        assert([503, 404].includes(text.status), `${text.status} ${textBody}`);
        assert(!markup.test(textBody), `text body has markup: ${textBody}`);
        assertMatch(textBody, /^\\u\{3c\}/, "the name is shown, escaped");
        assertMatch(text.headers.get("content-type") ?? "", /^text\/plain/);

        const json = await fetch(`${free.health.url}/?serviceName=${q}`, {
          headers: { accept: "application/json" },
        });
        const jsonBody = await json.text();
        assertMatch(json.headers.get("content-type") ?? "", /^application\/json/);
        const parsed = JSON.parse(jsonBody);
        assert(!markup.test(parsed.service), `JSON service has markup: ${parsed.service}`);
        assert(!/[<>'&]/.test(jsonBody), `JSON body has markup: ${jsonBody}`);
      }
      // Refused names (400, 403) are not echoed at all.
      for (
        const [url, status] of [
          [`${free.health.url}/?serviceName=${encodeURIComponent("<script> x")}`, 400],
          [`${free.health.url}/?serviceName=%3Cscript%3E%0Aforged`, 400],
          [`${free.health.url}/?serviceName=${encodeURIComponent("a\u202Etxt.exe")}`, 400],
          [`${fixed.health.url}/?serviceName=${encodeURIComponent("<script>")}`, 403],
          [`${free.health.url}/%3Cscript%3E`, 404],
        ] as [string, number][]
      ) {
        const res = await fetch(url);
        const body = await res.text();
        assertEquals(res.status, status, `${url}: ${body}`);
        assert(!/script|forged|txt/.test(body), `${url} echoed input: ${body}`);
        assert(!markup.test(body), `${url}: ${body}`);
      }
    } finally {
      await Promise.all([free.stop(), fixed.stop()]);
      await fixture.stop();
    }
  },
});

/** The lines of a PEM file's base64 body. */
function base64Lines(file: string): string[] {
  return certText(file).split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !l.startsWith("-----")
  );
}

Deno.test({
  name: "no key material (or -rpc-header values) in any output, whatever the mode and outcome",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const mtlsFixture = await HealthFixture.start({ tls: "mtls" });
    const outputs: { what: string; code: number; text: string }[] = [];
    const TOKEN = "s3cr3t-token-4242";
    try {
      // Server mode over HTTPS, as verbose as it gets.
      const server = await spawnMain([
        `-grpcaddr=${fixture.target}`,
        "-http-listen-addr=127.0.0.1:0",
        "-metrics-http-listen-addr=",
        `-https-listen-cert=${cert("server.pem")}`,
        `-https-listen-key=${cert("server-key.pem")}`,
        `-rpc-header=authorization: Bearer ${TOKEN}`,
        "-debug",
        "-v=2",
        "-jsonLog",
      ]);
      assertEquals(server.urls.length, 1, server.stderr.join("\n"));
      const port = new URL(server.urls[0]).port;
      const client = Deno.createHttpClient({ caCerts: [certText("ca.pem")] });
      try {
        for (const path of ["/", "/?serviceName=missing", "/nope"]) {
          const res = await fetch(`https://localhost:${port}${path}`, { client });
          await res.text();
          assert([200, 404].includes(res.status), `${path}: ${res.status}`);
        }
        fixture.behavior = { code: 13, details: "boom" };
        await (await fetch(`https://localhost:${port}/`, { client })).text();
      } finally {
        client.close();
      }
      const stopped = await stopMain(server);
      assertEquals(stopped.code, 0, stopped.stderr);
      assert(stopped.stderr.includes(TOKEN) === false, "the -rpc-header value was logged");
      outputs.push({
        what: "server (HTTPS, -debug -v=2 -jsonLog)",
        code: stopped.code,
        text: stopped.stdout + stopped.stderr,
      });

      // A start that fails on the key: the certificate is the CA's, the key the server's.
      const mismatched = await spawnMain([
        `-grpcaddr=${fixture.target}`,
        "-http-listen-addr=127.0.0.1:0",
        "-metrics-http-listen-addr=",
        `-https-listen-cert=${cert("ca.pem")}`,
        `-https-listen-key=${cert("server-key.pem")}`,
        "-debug",
        "-v=2",
      ]);
      const failed = await mismatched.finished;
      assertEquals(failed.code, 255, failed.stderr);
      assertMatch(failed.stderr, /key does not match/);
      outputs.push({ what: "server, mismatched key", code: failed.code, text: failed.stderr });

      // Probes with a client key: working, and key files in the wrong places.
      const tlsFlags = ["-tls", `-tls-ca-cert=${cert("ca.pem")}`, "-v=2"];
      for (
        const [what, args, codes] of [
          ["probe mTLS", [
            `-addr=${mtlsFixture.target}`,
            ...tlsFlags,
            `-tls-client-key=${cert("client-key.pem")}`,
            `-tls-client-cert=${cert("client.pem")}`,
          ], [0]],
          ["probe mTLS, key of another certificate", [
            `-addr=${mtlsFixture.target}`,
            ...tlsFlags,
            `-tls-client-key=${cert("server-key.pem")}`,
            `-tls-client-cert=${cert("client.pem")}`,
          ], [1, 2]],
          ["probe, key given as the certificate", [
            `-addr=${mtlsFixture.target}`,
            ...tlsFlags,
            `-tls-client-key=${cert("client-key.pem")}`,
            `-tls-client-cert=${cert("client-key.pem")}`,
          ], [1, 2]],
          ["runcli, key given as the CA", [
            "-runcli",
            `-grpcaddr=${mtlsFixture.target}`,
            "-tls",
            `-tls-ca-cert=${cert("client-key.pem")}`,
            `-tls-client-key=${cert("client-key.pem")}`,
            `-tls-client-cert=${cert("client.pem")}`,
          ], [1, 255]],
        ] as [string, string[], number[]][]
      ) {
        const run = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--allow-net",
            "--allow-read",
            "--allow-env",
            `${root}main.ts`,
            ...args,
          ],
          cwd: root,
          env: { NO_COLOR: "1" },
          stdin: "null",
        }).output();
        const dec = new TextDecoder();
        const text = dec.decode(run.stdout) + dec.decode(run.stderr);
        assert(codes.includes(run.code), `${what}: exit ${run.code}\n${text}`);
        outputs.push({ what, code: run.code, text });
      }

      const keyLines = [
        ...base64Lines("server-key.pem"),
        ...base64Lines("client-key.pem"),
      ];
      assert(keyLines.length >= 4, "the key files have base64 lines");
      for (const o of outputs) {
        console.log(`${o.what}: exit ${o.code}, ${o.text.split("\n").length} lines`);
        for (const marker of ["PRIVATE KEY", "BEGIN", TOKEN, ...keyLines]) {
          assert(!o.text.includes(marker), `${o.what} printed ${JSON.stringify(marker)}`);
        }
        assert(!STACK_TRACE.test(o.text), `${o.what}: stack trace\n${o.text}`);
      }
    } finally {
      await fixture.stop();
      await mtlsFixture.stop();
    }
  },
});

/** Runs main.ts with exactly `permissions`; stdin closed, so Deno never prompts. */
async function runWith(permissions: string[], args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, `${root}main.ts`, ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const MINIMAL = ["--allow-net", "--allow-read", "--allow-env"];

Deno.test({
  name: "permissions: a missing one is one clear line and the mode's exit code; " +
    "--allow-net --allow-read --allow-env suffice",
  ...opts,
  fn: async (t) => {
    const fixture = await HealthFixture.start();
    const closed = `127.0.0.1:${closedPort()}`;
    try {
      await t.step("each mode without a permission it needs", async () => {
        const listen = ["-http-listen-addr=127.0.0.1:0", "-metrics-http-listen-addr="];
        const cases: [string, string[], string[], number, RegExp][] = [
          [
            "probe without --allow-net",
            ["--allow-read", "--allow-env"],
            [`-addr=${fixture.target}`],
            2,
            /^error: failed to connect service at ".*": .*--allow-net/,
          ],
          [
            "probe without --allow-env",
            ["--allow-net", "--allow-read"],
            [`-addr=${fixture.target}`],
            1,
            /run with --allow-env/,
          ],
          [
            "probe -tls-ca-cert without --allow-read",
            ["--allow-net", "--allow-env"],
            [`-addr=${fixture.target}`, "-tls", "-tls-ca-cert=certs/ca.pem"],
            1,
            /cannot read -tls-ca-cert file "certs\/ca.pem".*--allow-read/,
          ],
          [
            "server without --allow-net",
            ["--allow-read", "--allow-env"],
            [`-grpcaddr=${fixture.target}`, ...listen],
            255,
            /cannot listen on 127\.0\.0\.1:0: (permission denied|.*--allow-net)/,
          ],
          [
            "server -https-listen-cert without --allow-read",
            ["--allow-net", "--allow-env"],
            [
              `-grpcaddr=${fixture.target}`,
              ...listen,
              "-https-listen-cert=certs/server.pem",
              "-https-listen-key=certs/server-key.pem",
            ],
            255,
            /cannot read -https-listen-cert file "certs\/server.pem".*--allow-read/,
          ],
          [
            "runcli without --allow-env",
            ["--allow-net", "--allow-read"],
            ["-runcli", `-grpcaddr=${closed}`],
            255,
            /run with --allow-env/,
          ],
          [
            "runcli without --allow-net",
            ["--allow-read", "--allow-env"],
            ["-runcli", `-grpcaddr=${fixture.target}`],
            1,
            /--allow-net/,
          ],
        ];
        const rows: string[] = [];
        for (const [what, permissions, args, code, line] of cases) {
          const r = await runWith(permissions, args);
          const err = r.stderr.trim();
          rows.push(`${what.padEnd(42)} exit ${String(r.code).padEnd(3)} ${err}`);
          assertEquals(r.code, code, `${what}: ${r.stderr}`);
          assertEquals(err.split("\n").length, 1, `${what}: one line\n${r.stderr}`);
          assertMatch(err, line, what);
          assert(!STACK_TRACE.test(r.stderr) && !/Uncaught/.test(r.stderr), r.stderr);
        }
        console.log(`\n${rows.join("\n")}\n`);
      });

      await t.step(
        "probe and runcli with exactly --allow-net --allow-read --allow-env",
        async () => {
          const probe = await runWith(MINIMAL, [`-addr=${fixture.target}`]);
          assertEquals([probe.code, probe.stderr], [0, "status: SERVING\n"]);
          const runcli = await runWith(MINIMAL, ["-runcli", `-grpcaddr=${fixture.target}`]);
          assertEquals(runcli.code, 0, runcli.stderr);
        },
      );

      await t.step("server mode with exactly --allow-net --allow-read --allow-env", async () => {
        const server = await spawnMain([
          `-grpcaddr=${fixture.target}`,
          "-http-listen-addr=127.0.0.1:0",
          "-metrics-http-listen-addr=127.0.0.1:0",
          "-jsonLog",
        ], { permissions: MINIMAL, listeners: 2 });
        try {
          assertEquals(server.urls.length, 2, server.stderr.join("\n"));
          const health = await fetch(server.urls[0]);
          assertEquals([health.status, await health.text()], [200, "SERVING\n"]);
          // The process metrics need nothing more either (no --allow-sys).
          const metrics = await fetch(`${server.urls[1]}/metrics`);
          const exposition = await metrics.text();
          assertEquals(metrics.status, 200, exposition);
          assertMatch(exposition, /^process_resident_memory_bytes [1-9]/m);
        } finally {
          const stopped = await stopMain(server);
          assertEquals(stopped.code, 0, stopped.stderr);
          assert(!STACK_TRACE.test(stopped.stderr), stopped.stderr);
          for (const line of stopped.stderr.split("\n").filter(Boolean)) {
            const entry = JSON.parse(line);
            assert(entry.level !== "error", `an error was logged: ${line}`);
          }
        }
      });
    } finally {
      await fixture.stop();
    }
  },
});

/** Runs curl; undefined when it is not installed. */
async function curl(args: string[]): Promise<{ code: number; out: string } | undefined> {
  try {
    const out = await new Deno.Command("curl", {
      args: ["-sS", "--max-time", "10", ...args],
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

Deno.test({
  name: "mTLS through main.ts: only a valid certificate from -https-listen-ca gets an answer",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const server = await spawnMain([
      `-grpcaddr=${fixture.target}`,
      "-http-listen-addr=127.0.0.1:0",
      "-metrics-http-listen-addr=",
      `-https-listen-cert=${cert("server.pem")}`,
      `-https-listen-key=${cert("server-key.pem")}`,
      "-https-listen-verify",
      `-https-listen-ca=${cert("ca.pem")}`,
      "-jsonLog",
    ]);
    try {
      assertEquals(server.urls.length, 1, server.stderr.join("\n"));
      const url = `https://localhost:${new URL(server.urls[0]).port}/`;
      const who = [undefined, "client", "other-client", "expired-client", "notyet-client"];
      const rows: string[] = [];
      const accepted = (w: string | undefined) => w === "client";

      // fetch, always available.
      for (const w of who) {
        const client = Deno.createHttpClient({
          caCerts: [certText("ca.pem")],
          ...(w ? { cert: certText(`${w}.pem`), key: certText(`${w}-key.pem`) } : {}),
        });
        let answer: string;
        try {
          const res = await fetch(url, { client });
          answer = `${res.status} ${(await res.text()).trim()}`;
        } catch (e) {
          answer = `refused (${(e as Error).name})`;
        } finally {
          client.close();
        }
        rows.push(`fetch ${(w ?? "no certificate").padEnd(15)} ${answer}`);
        if (accepted(w)) assertEquals(answer, "200 SERVING", w);
        else assertMatch(answer, /^refused/, `${w ?? "no certificate"}: ${answer}`);
      }

      // curl, HTTP/2 and HTTP/1.1, when installed.
      if ((await curl(["--version"])) === undefined) {
        console.log("SKIPPED (curl not installed): mTLS checks with curl");
      } else {
        for (const version of ["--http2", "--http1.1"]) {
          for (const w of who) {
            const r = (await curl([
              version,
              "--cacert",
              cert("ca.pem"),
              ...(w ? ["--cert", cert(`${w}.pem`), "--key", cert(`${w}-key.pem`)] : []),
              "-w",
              "\n%{http_code}",
              url,
            ]))!;
            const code = r.out.trim().split("\n").at(-1);
            rows.push(
              `curl ${version} ${(w ?? "no certificate").padEnd(15)} exit ${r.code} ${code}`,
            );
            if (accepted(w)) assertEquals([r.code, r.out], [0, "SERVING\n\n200"], w);
            else {
              assert(r.code !== 0, `${w ?? "no certificate"} was accepted: ${r.out}`);
              assert(!r.out.includes("SERVING"), r.out);
            }
          }
        }
      }
      console.log(`\n${rows.join("\n")}\n`);
      // The server is still fine after the refusals.
      const client = Deno.createHttpClient({
        caCerts: [certText("ca.pem")],
        cert: certText("client.pem"),
        key: certText("client-key.pem"),
      });
      const res = await fetch(url, { client });
      assertEquals([res.status, await res.text()], [200, "SERVING\n"]);
      client.close();
    } finally {
      const stopped = await stopMain(server);
      assertEquals(stopped.code, 0, stopped.stderr);
      await fixture.stop();
    }
  },
});
