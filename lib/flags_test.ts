import { assert, assertEquals, assertMatch, assertStringIncludes } from "../tests/assert.ts";
import { invalidArgumentExit } from "./status.ts";
import {
  type Config,
  detectMode,
  flagReferenceMarkdown,
  flagTable,
  type Mode,
  parseFlags,
  type ParseResult,
  parseRpcHeader,
  usage,
  validateServiceName,
} from "./flags.ts";

/** Parses and fails the test unless it succeeded. */
function ok(args: string[], invokedAs?: string): Config {
  const r = parseFlags(args, invokedAs);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(args)} to parse, got: ${r.message}`);
  return r.config;
}

/** Parses and fails the test unless it failed; returns the failure. */
function err(args: string[], invokedAs?: string): { mode: Mode; message: string } {
  const r = parseFlags(args, invokedAs);
  if (r.ok) throw new Error(`expected ${JSON.stringify(args)} to fail, got a config`);
  return { mode: r.mode, message: r.message };
}

const defaults: Config = {
  mode: "server",
  addr: "localhost:50051",
  services: [""],
  servicesFixed: false,
  tls: false,
  tlsNoVerify: false,
  tlsCaCert: "",
  tlsClientCert: "",
  tlsClientKey: "",
  tlsServerName: "",
  userAgent: "grpc_health_proxy",
  connectTimeoutMs: 1000,
  rpcTimeoutMs: 1000,
  rpcHeaders: [],
  gzip: false,
  verbosity: 0,
  version: false,
  help: false,
  httpListenAddr: "localhost:8080",
  httpListenPath: "/",
  httpsListenCert: "",
  httpsListenKey: "",
  httpsListenVerify: false,
  httpsListenCa: "",
  httpsSelfSigned: false,
  metricsHttpListenAddr: "localhost:9000",
  metricsHttpPath: "/metrics",
  statusHttpPath: "/status",
  jsonLog: false,
  debug: false,
  logTarget: "",
  checkIntervalMs: 0,
  healthyThreshold: 1,
  unhealthyThreshold: 1,
  watch: false,
  httpLivenessPath: "",
  httpListPath: "",
  list: false,
};

Deno.test("defaults per mode", () => {
  assertEquals(ok(["-grpcaddr=localhost:50051"]), defaults);
  assertEquals(ok(["-addr=localhost:50051"]), {
    ...defaults,
    mode: "probe",
    userAgent: "grpc_health_probe",
  });
  assertEquals(ok(["-runcli", "-grpcaddr=localhost:50051"]), { ...defaults, mode: "runcli" });
  assertEquals(ok(["-grpcaddr=localhost:50051"], "/usr/bin/grpc_health_probe"), {
    ...defaults,
    mode: "probe",
    userAgent: "grpc_health_probe",
  });
});

Deno.test("invalidArgumentExit", () => {
  assertEquals(invalidArgumentExit, { probe: 1, runcli: 255, server: 255 });
});

// ----- aliases -------------------------------------------------------------------------------

/** A valid probe-family command line that sets every aliased flag; runcli so -addr is neutral. */
const aliasBase = [
  "-runcli",
  "-addr=h:1",
  "-service=s",
  "-tls",
  "-tls-ca-cert=ca.pem",
  "-tls-client-cert=c.pem",
  "-tls-client-key=k.pem",
  "-tls-server-name=n",
];

/** The same with -tls-no-verify, which conflicts with the CA and server name. */
const noVerifyBase = ["-runcli", "-addr=h:1", "-tls", "-tls-no-verify"];

Deno.test("every alias of every flag gives the same config", () => {
  let checked = 0;
  for (const spec of flagTable) {
    if (spec.names.length < 2 || spec.key === "help") continue;
    const flagName = (a: string) => /^-([^=]+)/.exec(a)![1];
    const base = [aliasBase, noVerifyBase].find((b) =>
      b.some((a) => flagName(a) === spec.names[0])
    );
    assert(base !== undefined, `no base sets -${spec.names[0]}`);
    const want = ok(base);
    for (const alias of spec.names) {
      const args = base.map((a) =>
        flagName(a) === spec.names[0] ? a.replace(spec.names[0], alias) : a
      );
      assertEquals(ok(args), want, `-${alias}`);
      checked++;
    }
  }
  assertEquals(checked, 16); // 8 alias pairs
});

Deno.test("all-proxy spelling equals all-probe spelling", () => {
  const probe = ok(aliasBase.slice(1), "grpc_health_probe");
  const proxy = ok(
    [
      "-grpcaddr=h:1",
      "-service-name=s",
      "-grpctls",
      "-grpc-ca-cert=ca.pem",
      "-grpc-client-cert=c.pem",
      "-grpc-client-key=k.pem",
      "-grpc-sni-server-name=n",
    ],
    "grpc_health_probe",
  );
  assertEquals(probe.mode, "probe");
  assertEquals(proxy, probe);
});

Deno.test("tls-no-verify aliases", () => {
  const a = ok(["-addr=x", "-tls", "-tls-no-verify"]);
  const b = ok(["-addr=x", "-grpctls", "-grpc-tls-no-verify"]);
  assertEquals(a, b);
  assertEquals(a.tlsNoVerify, true);
});

Deno.test("-h and -help and --help", () => {
  for (const args of [["-h"], ["-help"], ["--help"], ["--h"], ["-h=true"]]) {
    const c = ok(args);
    assertEquals(c.help, true, args.join(" "));
  }
  assertEquals(ok(["-h=false", "-grpcaddr=x"]).help, false);
});

// ----- modes ---------------------------------------------------------------------------------

const modeCases: [string[], string | undefined, Mode][] = [
  [[], undefined, "server"],
  [["-grpcaddr=x"], undefined, "server"],
  [["-grpcaddr=x"], "grpc_health_proxy", "server"],
  [["-addr=x"], undefined, "probe"],
  [["--addr=x"], undefined, "probe"],
  [["-addr", "x"], undefined, "probe"],
  [["-addr=x", "-http-listen-addr=:8080"], undefined, "server"],
  [["-http-listen-addr=:8080", "-addr=x"], undefined, "server"],
  [["-addr=x", "-runcli"], undefined, "runcli"],
  [["-grpcaddr=x", "-runcli"], undefined, "runcli"],
  [["-runcli"], undefined, "runcli"],
  [["-runcli=true", "-grpcaddr=x"], undefined, "runcli"],
  [["-runcli=false", "-grpcaddr=x"], undefined, "server"],
  [["-runcli=false", "-addr=x"], undefined, "probe"],
  [["-runcli", "-runcli=false", "-grpcaddr=x"], undefined, "server"],
  [["-grpcaddr=x"], "grpc_health_probe", "probe"],
  [["-grpcaddr=x"], "/bin/grpc_health_probe", "probe"],
  [["-grpcaddr=x"], "/usr/local/bin/grpc_health_probe", "probe"],
  [["-grpcaddr=x"], "grpc_health_probe.js", "probe"],
  [["-grpcaddr=x"], "/dist/grpc_health_probe.js", "probe"],
  [["-grpcaddr=x"], "grpc_health_probe.exe", "probe"],
  [["-grpcaddr=x"], "C:\\tools\\grpc_health_probe.exe", "probe"],
  [["-grpcaddr=x"], "grpc_health_probe.ts", "probe"],
  [["-grpcaddr=x", "-runcli"], "grpc_health_probe", "probe"],
  [["-grpcaddr=x"], "grpc_health_probe.bundle.js", "server"],
  [["-grpcaddr=x"], "my_grpc_health_probe", "server"],
  [["-grpcaddr=x"], "/opt/grpc_health_probe/main.ts", "server"],
  [["-grpcaddr=x"], "main.ts", "server"],
  // -addr as a value, after "--" or after a non-flag is not the -addr flag
  [["-service", "-addr"], undefined, "server"],
  [["--", "-addr=x"], undefined, "server"],
  [["x", "-addr=x"], undefined, "server"],
  // lists that do not parse still get a mode
  [["-bogus", "-addr=x"], undefined, "probe"],
  [["-addr=x", "-bogus", "-runcli"], undefined, "runcli"],
  [["-runcli=maybe", "-grpcaddr=x"], undefined, "runcli"],
  [["-addr=x", "-connect-timeout"], undefined, "probe"],
  [["---x", "-runcli"], undefined, "runcli"],
];

for (const [args, invokedAs, want] of modeCases) {
  Deno.test(`mode of ${JSON.stringify(args)} as ${invokedAs ?? "(default)"} is ${want}`, () => {
    assertEquals(detectMode(args, invokedAs), want);
    // parseFlags reports the same mode, whether it succeeds or not.
    const r = parseFlags(args, invokedAs);
    assertEquals(r.ok ? r.config.mode : r.mode, want);
  });
}

// ----- grammar -------------------------------------------------------------------------------

Deno.test("values: -name=value, -name value, --name value", () => {
  for (
    const args of [
      ["-grpcaddr=h:1", "-http-listen-path=/hz"],
      ["-grpcaddr", "h:1", "-http-listen-path", "/hz"],
      ["--grpcaddr", "h:1", "--http-listen-path=/hz"],
    ]
  ) {
    const c = ok(args);
    assertEquals([c.addr, c.httpListenPath], ["h:1", "/hz"], args.join(" "));
  }
});

Deno.test("a value may start with '-' (as in Go) and may contain '='", () => {
  assertEquals(ok(["-grpcaddr", "-x"]).addr, "-x");
  assertEquals(ok(["-grpcaddr=a=b"]).addr, "a=b");
  assertEquals(ok(["-grpcaddr=x", "-service", "-tls"]).services, ["-tls"]);
});

const boolTrue = ["", "=true", "=1", "=t", "=T", "=TRUE", "=True"];
const boolFalse = ["=false", "=0", "=f", "=F", "=FALSE", "=False"];
for (const suffix of [...boolTrue, ...boolFalse]) {
  Deno.test(`bool form -gzip${suffix}`, () => {
    assertEquals(ok(["-grpcaddr=x", `-gzip${suffix}`]).gzip, boolTrue.includes(suffix));
    assertEquals(ok(["-grpcaddr=x", `--gzip${suffix}`]).gzip, boolTrue.includes(suffix));
  });
}

Deno.test("bool flags: last one wins", () => {
  assertEquals(ok(["-grpcaddr=x", "-gzip", "-gzip=false"]).gzip, false);
  assertEquals(ok(["-grpcaddr=x", "-gzip=false", "-gzip"]).gzip, true);
});

const vCases: [string[], number][] = [
  [[], 0],
  [["-v"], 1],
  [["--v"], 1],
  [["-v=0"], 0],
  [["-v=2"], 2],
  [["-v=10"], 10],
  [["-v", "10"], 10],
  [["-v", "0"], 0],
  [["--v", "3"], 3],
  [["-v=true"], 1],
  [["-v=false"], 0],
  [["-v", "-gzip"], 1],
  [["-v=1", "-v=4"], 4],
];
for (const [args, want] of vCases) {
  Deno.test(`verbosity ${JSON.stringify(args)} = ${want}`, () => {
    assertEquals(ok(["-grpcaddr=x", ...args]).verbosity, want);
  });
}

Deno.test("-v does not take a non-numeric next argument", () => {
  // "x" is then the first non-flag argument.
  assertMatch(err(["-grpcaddr=x", "-v", "x"]).message, /^unexpected argument "x"/);
  assertMatch(err(["-grpcaddr=x", "-v", "-1"]).message, /flag provided but not defined: -1/);
  assertMatch(err(["-grpcaddr=x", "-v=-1"]).message, /invalid value "-1" for flag -v/);
  assertMatch(err(["-grpcaddr=x", "-v=x"]).message, /invalid value "x" for flag -v/);
});

Deno.test("-- ends the flags; anything after it is an error", () => {
  assertEquals(ok(["-grpcaddr=x", "--"]).addr, "x");
  assertEquals(
    err(["-grpcaddr=x", "--", "-gzip"]).message,
    'unexpected argument "-gzip" after "--": this program takes flags only (see -h)',
  );
  assertEquals(ok(["-grpcaddr", "--"]).addr, "--"); // a value, as in Go
});

Deno.test("positional arguments are errors", () => {
  assertEquals(
    err(["-grpcaddr=x", "extra"]).message,
    'unexpected argument "extra": this program takes flags only (see -h)',
  );
  assertEquals(
    err(["-grpcaddr=x", "-"]).message,
    'unexpected argument "-": this program takes flags only (see -h)',
  );
  // parsing stops at the first non-flag, so later flags are not seen
  assertMatch(err(["extra", "-grpcaddr=x"]).message, /^unexpected argument "extra"/);
  assertEquals(
    err(["-addr=x", "-tls", "false"]).message,
    'unexpected argument "false": give a boolean flag its value with "=", as -tls=false',
  );
});

const grammarErrors: [string[], string, Mode][] = [
  [["-bogus"], "flag provided but not defined: -bogus (see -h)", "server"],
  [["--bogus=1"], "flag provided but not defined: -bogus (see -h)", "server"],
  [["-addr=x", "-bogus"], "flag provided but not defined: -bogus (see -h)", "probe"],
  [["-runcli", "-bogus"], "flag provided but not defined: -bogus (see -h)", "runcli"],
  [["-adr=x"], "flag provided but not defined: -adr (did you mean -addr?) (see -h)", "server"],
  [
    ["-grpc-no-verify"],
    "flag provided but not defined: -grpc-no-verify (see -h)",
    "server",
  ],
  [
    ["-tls-ca-certs=x"],
    "flag provided but not defined: -tls-ca-certs (did you mean -tls-ca-cert?) (see -h)",
    "server",
  ],
  [["-grpcaddr"], "flag needs an argument: -grpcaddr (as -grpcaddr=value; see -h)", "server"],
  [["-addr"], "flag needs an argument: -addr (as -addr=value; see -h)", "probe"],
  [
    ["-addr=x", "-service"],
    "flag needs an argument: -service (as -service=value; see -h)",
    "probe",
  ],
  [["-log_dir"], "flag needs an argument: -log_dir (as -log_dir=value; see -h)", "server"],
  [
    ["---grpcaddr=x"],
    "bad flag syntax: ---grpcaddr=x (flags look like -name or -name=value; see -h)",
    "server",
  ],
  [["-=x"], "bad flag syntax: -=x (flags look like -name or -name=value; see -h)", "server"],
  [["--=x"], "bad flag syntax: --=x (flags look like -name or -name=value; see -h)", "server"],
  [
    ["-grpcaddr=x", "-gzip=yes"],
    'invalid boolean value "yes" for -gzip: use -gzip, -gzip=true or -gzip=false',
    "server",
  ],
  [
    ["-grpcaddr=x", "-grpctls="],
    'invalid boolean value "" for -grpctls: use -grpctls, -grpctls=true or -grpctls=false',
    "server",
  ],
  [
    ["-grpcaddr=x", "-logtostderr=2"],
    'invalid boolean value "2" for -logtostderr: use -logtostderr, -logtostderr=true or ' +
    "-logtostderr=false",
    "server",
  ],
  [
    ["-addr=x", "-connect-timeout=1"],
    'invalid value "1" for flag -connect-timeout: missing unit in duration "1": add one of ns, ' +
    'us, ms, s, m, h (e.g. "1s", "300ms", "1.5s", "1m30s")',
    "probe",
  ],
  [
    ["-addr=x", "-rpc-timeout", "1d"],
    'invalid value "1d" for flag -rpc-timeout: unknown unit "d" in duration "1d": use ns, us, ' +
    "ms, s, m or h",
    "probe",
  ],
  [
    ["-grpcaddr=x", "-healthy-threshold=two"],
    'invalid value "two" for flag -healthy-threshold: not an integer, e.g. -healthy-threshold=3',
    "server",
  ],
  [
    ["-grpcaddr=x", "-unhealthy-threshold=1.5"],
    'invalid value "1.5" for flag -unhealthy-threshold: not an integer, e.g. ' +
    "-unhealthy-threshold=3",
    "server",
  ],
  [
    ["-grpcaddr=x", "-check-interval=soon"],
    'invalid value "soon" for flag -check-interval: invalid duration "soon" (e.g. "1s", ' +
    '"300ms", "1.5s", "1m30s")',
    "server",
  ],
];

for (const [args, message, mode] of grammarErrors) {
  Deno.test(`grammar error ${JSON.stringify(args)}`, () => {
    assertEquals(err(args), { mode, message });
  });
}

Deno.test("the first error wins, as Go stops at it", () => {
  assertMatch(err(["-bogus", "-other"]).message, /-bogus/);
  assertMatch(err(["-gzip=x", "-bogus"]).message, /-gzip/);
  // -h stops parsing: later problems are not looked at
  assertEquals(ok(["-h", "-bogus", "extra"]).help, true);
  assertMatch(err(["-bogus", "-h"]).message, /-bogus/);
  // a value error before -h is still reported
  assertMatch(err(["-connect-timeout=x", "-h"]).message, /-connect-timeout/);
});

Deno.test("-h skips validation; -version skips validation but not parsing", () => {
  assertEquals(ok(["-h"]).addr, "");
  assertEquals(ok(["-connect-timeout=0s", "-h"]).help, true);
  assertEquals(ok(["-h"], "grpc_health_probe").mode, "probe");
  const v = ok(["-version"]);
  assertEquals([v.version, v.addr], [true, ""]);
  assertEquals(ok(["-version", "-connect-timeout=0s", "-tls-ca-cert=x"]).version, true);
  assertMatch(err(["-version", "-bogus"]).message, /-bogus/);
  assertEquals(ok(["--version"], "grpc_health_probe").mode, "probe");
});

// ----- values --------------------------------------------------------------------------------

Deno.test("services: repeatable, comma-separated, deduplicated in order", () => {
  const svc = (...args: string[]) => ok(["-grpcaddr=x", ...args]);
  assertEquals(svc().services, [""]);
  assertEquals(svc().servicesFixed, false);
  assertEquals(svc("-service=").services, [""]);
  assertEquals(svc("-service=").servicesFixed, true);
  assertEquals(svc("-service-name", "a").services, ["a"]);
  assertEquals(svc("-service=a,b").services, ["a", "b"]);
  assertEquals(svc("-service=a, b").services, ["a", "b"]);
  assertEquals(svc("-service=b", "-service=a,b", "-service-name=c").services, ["b", "a", "c"]);
  assertEquals(svc("-service=a", "-service=").services, ["a", ""]);
  assertEquals(svc("-service=a,a,a").services, ["a"]);
  assertEquals(svc("-service=grpc.health.v1.Health").services, ["grpc.health.v1.Health"]);
  assertEquals(svc("-service=échos.Service").services, ["échos.Service"]);
});

const serviceErrors: [string, RegExp][] = [
  ["a,,b", /invalid value "a,,b" for flag -service: empty name in the list/],
  ["a,", /empty name in the list/],
  [",", /empty name in the list/],
  [" ", /empty name in the list/],
  ["a b", /space or non-printable character \(U\+0020\) at position 1/],
  ["a\nb", /non-printable character \(U\+000A\)/],
  ["a\u0000", /U\+0000/],
  ["a\u007f", /U\+007F/],
  ["a\u0085", /U\+0085/],
  ["a\u200bb", /U\+200B/],
  ["a\u202eb", /U\+202E/],
  ["a\ud800", /U\+D800/],
  ["x".repeat(257), /257 bytes long; the limit is 256/],
  ["é".repeat(129), /258 bytes long/],
];
for (const [value, want] of serviceErrors) {
  Deno.test(`bad service ${JSON.stringify(value).slice(0, 30)}`, () => {
    const e = err(["-addr=x", `-service=${value}`]);
    assertEquals(e.mode, "probe");
    assertMatch(e.message, want);
    assert(!e.message.includes("\n"));
  });
}

Deno.test("validateServiceName", () => {
  assertEquals(validateServiceName(""), undefined);
  assertEquals(validateServiceName("grpc.health.v1.Health"), undefined);
  assertEquals(validateServiceName("my-svc_v2/β"), undefined);
  assertEquals(validateServiceName("x".repeat(256)), undefined);
  assertMatch(validateServiceName("x".repeat(257))!, /257 bytes/);
  assertMatch(validateServiceName("a\tb")!, /\(U\+0009\) at position 1/);
  assertMatch(validateServiceName("\u00a0")!, /U\+00A0/);
});

Deno.test("rpc headers", () => {
  const c = ok([
    "-grpcaddr=x",
    "-rpc-header=Authorization: Bearer abc",
    "-rpc-header",
    "  X-Trace-Id :  v1:v2  ",
    "-rpc-header=x-empty:",
    "-rpc-header=x-a: 1, 2",
  ]);
  assertEquals(c.rpcHeaders, [
    ["authorization", "Bearer abc"],
    ["x-trace-id", "v1:v2"],
    ["x-empty", ""],
    ["x-a", "1, 2"],
  ]);
});

const headerErrors: [string, RegExp][] = [
  ["novalue", /expected 'name: value'/],
  [": x", /empty header name|pseudo-headers/],
  [":authority: x", /pseudo-headers/],
  ["  :path: /", /pseudo-headers/],
  ["bad name: x", /header name "bad name" may only have a-z/],
  ["x(y): z", /may only have a-z/],
  ["grpc-timeout: 1S", /reserved by gRPC/],
  ["GRPC-Status: 0", /reserved by gRPC/],
  ["x-bin: AAA=", /binary headers/],
  ["user-agent: x", /use -user-agent/],
  ["content-type: text/plain", /gRPC sets content-type itself/],
  ["connection: close", /not allowed in HTTP\/2/],
  ["te: trailers", /gRPC sets te itself/],
  ["x-a: b\r\nx-evil: 1", /printable ASCII/],
  ["x-a: caf\u00e9", /printable ASCII/],
];
for (const [value, want] of headerErrors) {
  Deno.test(`bad -rpc-header ${JSON.stringify(value)}`, () => {
    const e = err(["-addr=x", "-rpc-header", value]);
    assertMatch(e.message, /^invalid value ".*" for flag -rpc-header: /);
    assertMatch(e.message, want);
    assert(!/[\r\n]/.test(e.message), "one line");
  });
}

Deno.test("parseRpcHeader", () => {
  assertEquals(parseRpcHeader("A: b"), { header: ["a", "b"] });
  assert("error" in parseRpcHeader("a"));
});

Deno.test("durations", () => {
  const c = ok(["-grpcaddr=x", "-connect-timeout=300ms", "-rpc-timeout", "1m30s"]);
  assertEquals([c.connectTimeoutMs, c.rpcTimeoutMs], [300, 90000]);
  assertEquals(ok(["-grpcaddr=x", "-check-interval=1.5s"]).checkIntervalMs, 1500);
  assertEquals(ok(["-grpcaddr=x", "-check-interval=0"]).checkIntervalMs, 0);
  assertEquals(ok(["-grpcaddr=x", "-rpc-timeout=1500us"]).rpcTimeoutMs, 1.5);
});

Deno.test("server and background flags", () => {
  const c = ok([
    "-grpcaddr=x",
    "-http-listen-addr=[::]:0",
    "-http-listen-path=/ready",
    "-http-liveness-path=/live",
    "-https-self-signed",
    "-https-listen-verify",
    "-https-listen-ca=ca.pem",
    "-metrics-http-listen-addr=",
    "-metrics-http-path=/m",
    "-status-http-path=",
    "-check-interval=2s",
    "-healthy-threshold=2",
    "-unhealthy-threshold",
    "+3",
    "-watch",
    "-jsonLog",
    "-debug",
    "-logTarget=/tmp/log",
    "--logtostderr=1",
    "-alsologtostderr",
    "-stderrthreshold=ERROR",
    "-log_dir",
    "/tmp",
  ]);
  assertEquals(c, {
    ...defaults,
    addr: "x",
    httpListenAddr: "[::]:0",
    httpListenPath: "/ready",
    httpLivenessPath: "/live",
    httpsSelfSigned: true,
    httpsListenVerify: true,
    httpsListenCa: "ca.pem",
    metricsHttpListenAddr: "",
    metricsHttpPath: "/m",
    statusHttpPath: "",
    checkIntervalMs: 2000,
    healthyThreshold: 2,
    unhealthyThreshold: 3,
    watch: true,
    jsonLog: true,
    debug: true,
    logTarget: "/tmp/log",
  });
});

Deno.test("grpc_health_proxy README command lines parse", () => {
  const c = ok([
    "--http-listen-addr",
    "localhost:8080",
    "--http-listen-path",
    "/healthz",
    "--grpcaddr",
    "localhost:50051",
    "--https-listen-cert=certs/http_server_crt.pem",
    "--https-listen-key=certs/http_server_key.pem",
    "--service-name",
    "echo.EchoServer",
    "--https-listen-verify",
    "--https-listen-ca=certs/CA_crt.pem",
    "--grpctls",
    "--grpc-client-cert=certs/client_crt.pem",
    "--grpc-client-key=certs/client_key.pem",
    "--grpc-ca-cert=certs/CA_crt.pem",
    "--grpc-sni-server-name=grpc.domain.com",
    "--logtostderr=1",
    "-v",
    "10",
  ]);
  assertEquals(c.mode, "server");
  assertEquals(c.verbosity, 10);
  assertEquals(c.services, ["echo.EchoServer"]);
  const cli = ok([
    "--runcli",
    "--grpcaddr",
    "localhost:50051",
    "--service-name",
    "echo.EchoServer",
    "--logtostderr=1",
  ]);
  assertEquals(cli.mode, "runcli");
  // v1.2.1 accepted its listener flags with -runcli (and ignored them)
  assertEquals(ok(["-runcli", "-grpcaddr=x", "-http-listen-addr=0.0.0.0:8080"]).mode, "runcli");
});

Deno.test("grpc-health-probe command lines parse", () => {
  const c = ok(
    [
      "-addr=localhost:5000",
      "-tls",
      "-tls-ca-cert=ca.pem",
      "-tls-server-name=example.com",
      "-rpc-header=x-a: b",
      "-connect-timeout",
      "250ms",
      "-rpc-timeout=100ms",
      "-user-agent=kube-probe",
      "-service=foo",
      "-gzip",
      "-v",
    ],
  );
  assertEquals(c.mode, "probe");
  assertEquals(c.userAgent, "kube-probe");
  assertEquals(ok(["-addr=:5000", "-alts=false", "-spiffe=false"]).addr, ":5000");
});

// ----- validation ----------------------------------------------------------------------------

const validationCases: [string[], string | undefined, Mode, string][] = [
  // addr
  [
    [],
    "grpc_health_probe",
    "probe",
    "-addr not specified: give the gRPC server to check, " +
    "e.g. -addr=localhost:50051",
  ],
  [
    [],
    undefined,
    "server",
    "-grpcaddr not specified: give the gRPC server to check, " +
    "e.g. -grpcaddr=localhost:50051",
  ],
  [
    ["-runcli"],
    undefined,
    "runcli",
    "-grpcaddr not specified: give the gRPC server to " +
    "check, e.g. -grpcaddr=localhost:50051",
  ],
  [
    ["-addr="],
    undefined,
    "probe",
    "-addr not specified: give the gRPC server to check, " +
    "e.g. -addr=localhost:50051",
  ],
  [
    ["-grpcaddr="],
    "grpc_health_probe",
    "probe",
    "-grpcaddr not specified: give the gRPC " +
    "server to check, e.g. -grpcaddr=localhost:50051",
  ],
  [
    ["-addr= localhost:1"],
    undefined,
    "probe",
    'invalid -addr " localhost:1": remove the ' +
    "spaces or control characters",
  ],
  [
    ["-grpcaddr=a\tb"],
    undefined,
    "server",
    'invalid -grpcaddr "a\\tb": remove the spaces ' +
    "or control characters",
  ],
  // v1.2.1: listener address
  [
    ["-grpcaddr=x", "-http-listen-addr="],
    undefined,
    "server",
    "-http-listen-addr not " +
    "specified: give the address to serve on, e.g. -http-listen-addr=:8080",
  ],
  // timeouts
  [
    ["-addr=x", "-connect-timeout=0s"],
    undefined,
    "probe",
    "-connect-timeout must be greater " +
    "than zero (specified: 0s)",
  ],
  [
    ["-addr=x", "-connect-timeout=0"],
    undefined,
    "probe",
    "-connect-timeout must be greater " +
    "than zero (specified: 0s)",
  ],
  [
    ["-addr=x", "-rpc-timeout=-1s"],
    undefined,
    "probe",
    "-rpc-timeout must be greater than " +
    "zero (specified: -1s)",
  ],
  [
    ["-grpcaddr=x", "-rpc-timeout=0"],
    undefined,
    "server",
    "-rpc-timeout must be greater " +
    "than zero (specified: 0s)",
  ],
  [
    ["-addr=x", "-user-agent=a\u00e9"],
    undefined,
    "probe",
    'invalid -user-agent "a\u00e9": ' +
    "must be printable ASCII",
  ],
  // TLS without -tls, in the spelling the user typed
  [
    ["-addr=x", "-tls-no-verify"],
    undefined,
    "probe",
    "specified -tls-no-verify without " +
    "specifying -tls",
  ],
  [
    ["-addr=x", "-tls-ca-cert=a"],
    undefined,
    "probe",
    "specified -tls-ca-cert without " +
    "specifying -tls",
  ],
  [
    ["-addr=x", "-tls-client-cert=a"],
    undefined,
    "probe",
    "specified -tls-client-cert " +
    "without specifying -tls",
  ],
  [
    ["-addr=x", "-tls-client-key=a"],
    undefined,
    "probe",
    "specified -tls-client-key without " +
    "specifying -tls",
  ],
  [
    ["-addr=x", "-tls-server-name=a"],
    undefined,
    "probe",
    "specified -tls-server-name " +
    "without specifying -tls",
  ],
  [
    ["-grpcaddr=x", "-grpc-tls-no-verify"],
    undefined,
    "server",
    "specified " +
    "-grpc-tls-no-verify without specifying -grpctls",
  ],
  [
    ["-grpcaddr=x", "-grpc-ca-cert=a"],
    undefined,
    "server",
    "specified -grpc-ca-cert without " +
    "specifying -grpctls",
  ],
  [
    ["-grpcaddr=x", "-grpc-client-cert=a"],
    undefined,
    "server",
    "specified " +
    "-grpc-client-cert without specifying -grpctls",
  ],
  [
    ["-grpcaddr=x", "-grpc-client-key=a"],
    undefined,
    "server",
    "specified -grpc-client-key " +
    "without specifying -grpctls",
  ],
  [
    ["-grpcaddr=x", "-grpc-sni-server-name=a"],
    undefined,
    "server",
    "specified " +
    "-grpc-sni-server-name without specifying -grpctls",
  ],
  [
    ["-addr=x", "-grpc-ca-cert=a"],
    undefined,
    "probe",
    "specified -grpc-ca-cert without " +
    "specifying -grpctls",
  ],
  [
    ["-grpcaddr=x", "-tls-ca-cert=a"],
    undefined,
    "server",
    "specified -tls-ca-cert without " +
    "specifying -tls",
  ],
  [
    ["-grpcaddr=x", "-tls=false", "-grpc-ca-cert=a"],
    undefined,
    "server",
    "specified " +
    "-grpc-ca-cert without specifying -tls",
  ],
  [["-addr=x", "-tls-no-verify=false"], undefined, "probe", ""],
  // grpc-health-probe's order: no-verify is reported before ca-cert
  [
    ["-addr=x", "-tls-ca-cert=a", "-tls-no-verify"],
    undefined,
    "probe",
    "specified " +
    "-tls-no-verify without specifying -tls",
  ],
  // client cert and key
  [
    ["-addr=x", "-tls", "-tls-client-cert=c"],
    undefined,
    "probe",
    "specified " +
    "-tls-client-cert without specifying -tls-client-key",
  ],
  [
    ["-addr=x", "-tls", "-tls-client-key=k"],
    undefined,
    "probe",
    "specified -tls-client-key " +
    "without specifying -tls-client-cert",
  ],
  [
    ["-grpcaddr=x", "-grpctls", "-grpc-client-cert=c"],
    undefined,
    "server",
    "specified " +
    "-grpc-client-cert without specifying -grpc-client-key",
  ],
  [
    ["-grpcaddr=x", "-grpctls", "-grpc-client-key=k"],
    undefined,
    "server",
    "specified " +
    "-grpc-client-key without specifying -grpc-client-cert",
  ],
  // no-verify conflicts
  [
    ["-addr=x", "-tls", "-tls-no-verify", "-tls-ca-cert=a"],
    undefined,
    "probe",
    "cannot " +
    "specify -tls-ca-cert with -tls-no-verify (CA cert would not be used)",
  ],
  [
    ["-addr=x", "-tls", "-tls-no-verify", "-tls-server-name=a"],
    undefined,
    "probe",
    "cannot " +
    "specify -tls-server-name with -tls-no-verify (server name would not be used)",
  ],
  [
    ["-grpcaddr=x", "-grpctls", "-grpc-tls-no-verify", "-grpc-ca-cert=a"],
    undefined,
    "server",
    "cannot specify -grpc-ca-cert with -grpc-tls-no-verify (CA cert would not be used)",
  ],
  [
    ["-runcli", "-grpcaddr=x", "-grpctls", "-grpc-tls-no-verify", "-grpc-sni-server-name=a"],
    undefined,
    "runcli",
    "cannot specify -grpc-sni-server-name with -grpc-tls-no-verify " +
    "(server name would not be used)",
  ],
  // unsupported
  [
    ["-addr=x", "-alts"],
    undefined,
    "probe",
    "-alts is not supported by grpc_health_proxy; " +
    "use -tls (see -h)",
  ],
  [
    ["-addr=x", "--alts=true"],
    undefined,
    "probe",
    "-alts is not supported by " +
    "grpc_health_proxy; use -tls (see -h)",
  ],
  [
    ["-addr=x", "-spiffe"],
    undefined,
    "probe",
    "-spiffe is not supported by " +
    "grpc_health_proxy; use -tls with -tls-client-cert and -tls-client-key (see -h)",
  ],
  [
    ["-grpcaddr=x", "-spiffe"],
    undefined,
    "server",
    "-spiffe is not supported by " +
    "grpc_health_proxy; use -tls with -tls-client-cert and -tls-client-key (see -h)",
  ],
  // server-only flags outside server mode
  [
    ["-addr=x", "-http-listen-path=/a"],
    undefined,
    "probe",
    "-http-listen-path applies to " +
    "server mode only (probe mode: -addr without -http-listen-addr or -runcli; use -grpcaddr " +
    "for server mode)",
  ],
  [
    ["-grpcaddr=x", "-http-listen-addr=:1"],
    "grpc_health_probe",
    "probe",
    "-http-listen-addr " +
    "applies to server mode only (probe mode: invoked as grpc_health_probe)",
  ],
  [
    ["-addr=x", "-metrics-http-listen-addr="],
    undefined,
    "probe",
    "-metrics-http-listen-addr " +
    "applies to server mode only (probe mode: -addr without -http-listen-addr or -runcli; use " +
    "-grpcaddr for server mode)",
  ],
  [
    ["-addr=x", "-https-listen-verify"],
    undefined,
    "probe",
    "-https-listen-verify applies to " +
    "server mode only (probe mode: -addr without -http-listen-addr or -runcli; use -grpcaddr " +
    "for server mode)",
  ],
  [["-addr=x", "-https-listen-verify=false"], undefined, "probe", ""],
  [["-addr=x", "-watch=0"], undefined, "probe", ""],
  [
    ["-addr=x", "-watch"],
    undefined,
    "probe",
    "-watch applies to server mode only (probe " +
    "mode: -addr without -http-listen-addr or -runcli; use -grpcaddr for server mode)",
  ],
  [
    ["-addr=x", "-check-interval=bad"],
    undefined,
    "probe",
    "-check-interval applies to " +
    "server mode only (probe mode: -addr without -http-listen-addr or -runcli; use -grpcaddr " +
    "for server mode)",
  ],
  [
    ["-runcli", "-grpcaddr=x", "-check-interval=1s"],
    undefined,
    "runcli",
    "-check-interval " +
    "applies to server mode only (runcli mode: -runcli was given)",
  ],
  [
    ["-runcli", "-grpcaddr=x", "-healthy-threshold=2"],
    undefined,
    "runcli",
    "-healthy-" +
    "threshold applies to server mode only (runcli mode: -runcli was given)",
  ],
  [
    ["-runcli", "-grpcaddr=x", "-unhealthy-threshold=2"],
    undefined,
    "runcli",
    "-unhealthy-" +
    "threshold applies to server mode only (runcli mode: -runcli was given)",
  ],
  [
    ["-runcli", "-grpcaddr=x", "-watch"],
    undefined,
    "runcli",
    "-watch applies to server mode " +
    "only (runcli mode: -runcli was given)",
  ],
  [
    ["-runcli", "-grpcaddr=x", "-http-liveness-path=/l"],
    undefined,
    "runcli",
    "-http-" +
    "liveness-path applies to server mode only (runcli mode: -runcli was given)",
  ],
  [
    ["-runcli", "-grpcaddr=x", "-https-self-signed"],
    undefined,
    "runcli",
    "-https-self-" +
    "signed applies to server mode only (runcli mode: -runcli was given)",
  ],
  [
    ["-runcli", "-grpcaddr=x"],
    "grpc_health_probe",
    "probe",
    "-runcli applies to server and " +
    "runcli modes only (probe mode: invoked as grpc_health_probe)",
  ],
  // logging and glog flags are fine everywhere
  [
    [
      "-addr=x",
      "-v=2",
      "-jsonLog",
      "-debug",
      "-logTarget=f",
      "-logtostderr",
      "-alsologtostderr",
      "-stderrthreshold=INFO",
      "-log_dir=/tmp",
    ],
    undefined,
    "probe",
    "",
  ],
  [["-runcli", "-grpcaddr=x", "-v", "1", "--logtostderr=1"], undefined, "runcli", ""],
  // server mode: HTTPS listener
  [
    ["-grpcaddr=x", "-https-listen-cert=c"],
    undefined,
    "server",
    "must specify both " +
    "-https-listen-cert and -https-listen-key (or neither, for HTTP)",
  ],
  [
    ["-grpcaddr=x", "-https-listen-key=k"],
    undefined,
    "server",
    "must specify both " +
    "-https-listen-cert and -https-listen-key (or neither, for HTTP)",
  ],
  [
    ["-grpcaddr=x", "-https-listen-cert=c", "-https-listen-key=k", "-https-self-signed"],
    undefined,
    "server",
    "cannot specify -https-self-signed with -https-listen-cert/" +
    "-https-listen-key; choose one certificate source",
  ],
  [
    ["-grpcaddr=x", "-https-listen-cert=c", "-https-listen-key=k", "-https-listen-verify"],
    undefined,
    "server",
    "specified -https-listen-verify without specifying -https-listen-ca " +
    "(the CA certificates that sign client certificates)",
  ],
  [
    ["-grpcaddr=x", "-https-listen-cert=c", "-https-listen-key=k", "-https-listen-ca=ca"],
    undefined,
    "server",
    "specified -https-listen-ca without specifying -https-listen-verify " +
    "(add -https-listen-verify to require client certificates)",
  ],
  [
    ["-grpcaddr=x", "-https-listen-verify", "-https-listen-ca=ca"],
    undefined,
    "server",
    "-https-listen-verify needs HTTPS: add -https-listen-cert and -https-listen-key, or " +
    "-https-self-signed",
  ],
  [
    [
      "-grpcaddr=x",
      "-https-listen-verify",
      "-https-listen-ca=ca",
      "-https-listen-cert=c",
      "-https-listen-key=k",
    ],
    undefined,
    "server",
    "",
  ],
  [
    ["-grpcaddr=x", "-https-listen-verify", "-https-listen-ca=ca", "-https-self-signed"],
    undefined,
    "server",
    "",
  ],
  // listen addresses
  [
    ["-grpcaddr=x", "-http-listen-addr=8080"],
    undefined,
    "server",
    "invalid -http-listen-addr " +
    '"8080": expected host:port, e.g. localhost:8080, :8080, 0.0.0.0:8080 or [::]:8080',
  ],
  [
    ["-grpcaddr=x", "-http-listen-addr=:http"],
    undefined,
    "server",
    "invalid -http-listen-addr " +
    '":http": port "http" is not a number from 0 to 65535',
  ],
  [
    ["-grpcaddr=x", "-http-listen-addr=:65536"],
    undefined,
    "server",
    "invalid " +
    '-http-listen-addr ":65536": port "65536" is not a number from 0 to 65535',
  ],
  [
    ["-grpcaddr=x", "-http-listen-addr=:"],
    undefined,
    "server",
    "invalid -http-listen-addr " +
    '":": port "" is not a number from 0 to 65535',
  ],
  [
    ["-grpcaddr=x", "-http-listen-addr=::1:8080"],
    undefined,
    "server",
    "invalid " +
    '-http-listen-addr "::1:8080": IPv6 addresses need brackets, e.g. [::]:8080',
  ],
  [
    ["-grpcaddr=x", "-http-listen-addr=[nope]:80"],
    undefined,
    "server",
    "invalid " +
    '-http-listen-addr "[nope]:80": "nope" is not an IPv6 address (brackets are only for IPv6)',
  ],
  [
    ["-grpcaddr=x", "-http-listen-addr=[1.2.3.4]:80"],
    undefined,
    "server",
    "invalid " +
    '-http-listen-addr "[1.2.3.4]:80": "1.2.3.4" is not an IPv6 address (brackets are only for IPv6)',
  ],
  [
    ["-grpcaddr=x", "-http-listen-addr=a b:80"],
    undefined,
    "server",
    "invalid " +
    '-http-listen-addr "a b:80": "a b" is not a host name or address',
  ],
  [["-grpcaddr=x", "-http-listen-addr=:8080"], undefined, "server", ""],
  [["-grpcaddr=x", "-http-listen-addr=0.0.0.0:8080"], undefined, "server", ""],
  [["-grpcaddr=x", "-http-listen-addr=[::]:8080"], undefined, "server", ""],
  [["-grpcaddr=x", "-http-listen-addr=[fe80::1%eth0]:8080"], undefined, "server", ""],
  [["-grpcaddr=x", "-http-listen-addr=my-host.example:65535"], undefined, "server", ""],
  [
    ["-grpcaddr=x", "-metrics-http-listen-addr=9000"],
    undefined,
    "server",
    "invalid " +
    '-metrics-http-listen-addr "9000": expected host:port, e.g. localhost:8080, :8080, ' +
    "0.0.0.0:8080 or [::]:8080",
  ],
  [
    ["-grpcaddr=x", "-metrics-http-listen-addr=localhost:8080"],
    undefined,
    "server",
    '-metrics-http-listen-addr must differ from -http-listen-addr (both "localhost:8080"); use ' +
    "another port, or -metrics-http-listen-addr= to disable metrics",
  ],
  [
    ["-grpcaddr=x", "-metrics-http-listen-addr=:0", "-http-listen-addr=:0"],
    undefined,
    "server",
    "",
  ],
  // paths
  [
    ["-grpcaddr=x", "-http-listen-path=healthz"],
    undefined,
    "server",
    "invalid " +
    '-http-listen-path "healthz": must start with "/", e.g. /healthz',
  ],
  [
    ["-grpcaddr=x", "-http-listen-path="],
    undefined,
    "server",
    'invalid -http-listen-path "": ' +
    'must start with "/", e.g. /',
  ],
  [
    ["-grpcaddr=x", "-metrics-http-path=metrics"],
    undefined,
    "server",
    "invalid " +
    '-metrics-http-path "metrics": must start with "/", e.g. /metrics',
  ],
  [
    ["-grpcaddr=x", "-status-http-path=status"],
    undefined,
    "server",
    'invalid -status-http-path "status": must start with "/", e.g. /status',
  ],
  [
    ["-grpcaddr=x", "-metrics-http-path=/s.json", "-status-http-path=/s"],
    undefined,
    "server",
    '-status-http-path "/s" would hide -metrics-http-path "/s.json"; choose another path, or ' +
    "-status-http-path= to disable the status page",
  ],
  [
    ["-grpcaddr=x", "-http-liveness-path=live"],
    undefined,
    "server",
    "invalid " +
    '-http-liveness-path "live": must start with "/", e.g. /live',
  ],
  [
    ["-grpcaddr=x", "-http-listen-path=/a?b"],
    undefined,
    "server",
    "invalid " +
    '-http-listen-path "/a?b": must not contain spaces, control characters, ? or #',
  ],
  [
    ["-grpcaddr=x", "-http-liveness-path=/"],
    undefined,
    "server",
    "-http-liveness-path must " +
    'differ from -http-listen-path (both "/")',
  ],
  [
    ["-grpcaddr=x", "-http-liveness-path=/h", "-http-listen-path=/h"],
    undefined,
    "server",
    '-http-liveness-path must differ from -http-listen-path (both "/h")',
  ],
  // background checking
  [
    ["-grpcaddr=x", "-check-interval=-1s"],
    undefined,
    "server",
    "-check-interval must not be " +
    "negative (specified: -1s); use 0 to check on each request",
  ],
  [
    ["-grpcaddr=x", "-healthy-threshold=0"],
    undefined,
    "server",
    "-healthy-threshold must be " +
    "at least 1 (specified: 0)",
  ],
  [
    ["-grpcaddr=x", "-unhealthy-threshold=-2"],
    undefined,
    "server",
    "-unhealthy-threshold " +
    "must be at least 1 (specified: -2)",
  ],
  // server validation does not apply in runcli mode (v1.2.1 flags are accepted and unused)
  [
    ["-runcli", "-grpcaddr=x", "-http-listen-path=nope", "-https-listen-cert=c"],
    undefined,
    "runcli",
    "",
  ],
];

for (const [args, invokedAs, mode, message] of validationCases) {
  Deno.test(`validation ${JSON.stringify(args)}${invokedAs ? " as " + invokedAs : ""}`, () => {
    const r: ParseResult = parseFlags(args, invokedAs);
    if (message === "") {
      assert(r.ok, r.ok ? "" : `unexpected error: ${r.message}`);
      assertEquals(r.config.mode, mode);
    } else {
      assertEquals(r, { ok: false, mode, message });
    }
  });
}

Deno.test("messages are one line even for hostile input", () => {
  for (
    const args of [
      ["-a\nb"],
      ["-grpcaddr=x", "-gzip=\n"],
      ["-grpcaddr=x", "x\ny"],
      ["-grpcaddr=x", "-http-listen-path=a\nb"],
      ["-grpcaddr=x", "-http-listen-addr=\u2028:80"],
      ["-grpcaddr=x", "-bo\u0085gus"],
      ["-grpcaddr=x", "-service=" + "\n".repeat(10000)],
      ["-" + "y".repeat(100000)],
      ["---" + "y".repeat(100000)],
    ]
  ) {
    const { message } = err(args);
    assert(!/[\r\n\u0085\u2028\u2029]/.test(message), JSON.stringify(message));
    assert(message.length < 400, `short: ${message.length}`);
  }
});

// ----- usage and reference -------------------------------------------------------------------

Deno.test("usage mentions every flag, its groups and defaults", () => {
  for (const mode of ["server", "probe", "runcli"] as const) {
    const text = usage(mode);
    const flat = text.replace(/\s+/g, " ");
    for (const spec of flagTable) {
      for (const name of spec.names) {
        assertMatch(text, new RegExp(`(^|[ ,])-${name.replace(/[-]/g, "\\-")}[ ,\\n]`, "m"));
      }
    }
    assertStringIncludes(text, "Upstream TLS:");
    assertStringIncludes(text, "Background checking (server mode):");
    assertStringIncludes(flat, "(default 1s)");
    assertStringIncludes(flat, "(default localhost:8080)");
    for (const line of text.split("\n")) assert(line.length <= 100, `long line: ${line}`);
  }
  assertStringIncludes(usage("probe"), "(default grpc_health_probe)");
  assertStringIncludes(usage("server"), "(default grpc_health_proxy)");
  assertStringIncludes(usage(), "Usage: grpc_health_proxy");
  assertStringIncludes(usage("probe"), "Usage: grpc_health_probe");
});

Deno.test("flagReferenceMarkdown has every flag", () => {
  const md = flagReferenceMarkdown();
  for (const spec of flagTable) {
    for (const name of spec.names) assertStringIncludes(md, "`-" + name + "`");
  }
  assertStringIncludes(md, "| Flag | Default | Modes | Description |");
  // every table row has four cells
  for (const line of md.split("\n").filter((l) => l.startsWith("| `"))) {
    assertEquals(line.replace(/\\\|/g, "").split("|").length, 6, line);
  }
});

Deno.test("flag table is consistent", () => {
  const seen = new Set<string>();
  for (const spec of flagTable) {
    for (const name of spec.names) {
      assert(!seen.has(name), `duplicate -${name}`);
      seen.add(name);
    }
    assert(spec.help.length > 0);
    if (spec.kind === "list") assert(spec.parseList !== undefined, spec.names[0]);
    assert(spec.modes.length > 0);
  }
});

// ----- fuzz ----------------------------------------------------------------------------------

Deno.test("fuzz: parseFlags never throws and errors are one non-empty line", () => {
  let seed = 20240601;
  const rand = (n: number) => {
    // xorshift32: deterministic, so a failure reproduces.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)];
  const names = flagTable.flatMap((s) => s.names);
  const values = [
    "",
    "x",
    "0",
    "1",
    "-1",
    "10",
    "true",
    "false",
    "1s",
    "0s",
    "-1s",
    "300ms",
    "1.5h",
    "1",
    "1d",
    "localhost:50051",
    ":8080",
    "[::]:0",
    "::1:80",
    "/",
    "/healthz",
    "a,b",
    "a,,b",
    "name: value",
    ":authority: x",
    "grpc-x: y",
    "a\nb",
    "\u2028",
    "\u0000",
    "é",
    "\ud800",
    "=",
    "--",
    "-",
    "x".repeat(300),
  ];
  const junk = ["--", "-", "---", "-=", "--=x", "x", "", "-h", "-version", "=", "-\n"];
  let failures = 0;
  for (let i = 0; i < 2000; i++) {
    const args: string[] = [];
    const count = rand(8);
    for (let j = 0; j < count; j++) {
      const r = rand(10);
      const name = r === 0 ? pick(names) + pick(["x", "-", "_", ""]) : pick(names);
      const dashes = pick(["-", "--"]);
      if (r < 5) args.push(`${dashes}${name}=${pick(values)}`);
      else if (r < 7) args.push(`${dashes}${name}`, pick(values));
      else if (r < 9) args.push(`${dashes}${name}`);
      else args.push(pick(junk));
    }
    const invokedAs = pick([undefined, "grpc_health_probe", "grpc_health_proxy", "x.js"]);
    let r: ParseResult;
    try {
      r = parseFlags(args, invokedAs);
      detectMode(args, invokedAs);
    } catch (e) {
      throw new Error(`parseFlags threw on ${JSON.stringify(args)}: ${e}`);
    }
    if (!r.ok) {
      failures++;
      assert(r.message.length > 0, `empty message for ${JSON.stringify(args)}`);
      assert(!/[\r\n\u2028\u2029]/.test(r.message), `multi-line: ${JSON.stringify(r.message)}`);
      assertEquals(r.mode, detectMode(args, invokedAs));
    } else {
      assertEquals(r.config.mode, detectMode(args, invokedAs));
    }
  }
  assert(failures > 100 && failures < 2000, `a mix of outcomes (${failures} failures)`);
});

Deno.test("-http-list-path: server mode only, a valid path, distinct from the other paths", () => {
  assertEquals(ok(["-grpcaddr=x:1", "-http-list-path=/services"]).httpListPath, "/services");
  assertEquals(
    err(["-grpcaddr=x:1", "-http-list-path=services"]).message,
    'invalid -http-list-path "services": must start with "/", e.g. /services',
  );
  assertEquals(
    err(["-grpcaddr=x:1", "-http-listen-path=/h", "-http-list-path=/h"]).message,
    '-http-list-path must differ from -http-listen-path (both "/h")',
  );
  assertEquals(
    err(["-grpcaddr=x:1", "-http-liveness-path=/l", "-http-list-path=/l"]).message,
    '-http-list-path must differ from -http-liveness-path (both "/l")',
  );
  const probe = err(["-addr=x:1", "-http-list-path=/services"]);
  assertEquals(probe.mode, "probe");
  assert(probe.message.startsWith("-http-list-path applies to server mode only"), probe.message);
});

Deno.test("-list: probe and runcli only, never with -service", () => {
  assertEquals(ok(["-addr=x:1", "-list"]).list, true);
  assertEquals(ok(["-runcli", "-grpcaddr=x:1", "-list"]).list, true);
  const server = err(["-grpcaddr=x:1", "-list"]);
  assertEquals(server.mode, "server");
  assert(server.message.startsWith("-list applies to probe and runcli modes only"), server.message);
  for (
    const [args, mode, flag] of [
      [["-addr=x:1", "-list", "-service=a"], "probe", "-service"],
      [["-runcli", "-grpcaddr=x:1", "-service-name=a", "-list"], "runcli", "-service-name"],
      [["-addr=x:1", "-list", "-service="], "probe", "-service"],
    ] as const
  ) {
    const f = err([...args]);
    assertEquals(f.mode, mode);
    assertEquals(
      f.message,
      `cannot specify ${flag} with -list: -list shows every service the upstream lists; ` +
        `drop ${flag}, or drop -list to check that service`,
    );
  }
});

Deno.test("a -metrics-http-path of /status from before the status page still starts", () => {
  const c = ok(["-grpcaddr=x", "-metrics-http-path=/status"]);
  assertEquals([c.metricsHttpPath, c.statusHttpPath], ["/status", "/status"]);
});
