/**
 * `deno task bench`: measures what the README reports, on this machine, with load generator,
 * proxy and upstream sharing it.
 *
 * - probe start-up: median wall time and peak RSS (GNU time) of `main.ts -addr=...` and of the
 *   bundle against a SERVING upstream (21 runs after one warm-up);
 * - server mode: wrk with 16 keep-alive HTTP/1.1 connections for 10 s (on-demand checks) and
 *   64 connections with `-check-interval=1s`, reporting req/s, p50, p99 and the
 *   HTTP-requests-per-RPC ratio counted at the upstream;
 * - a yardstick: a bare `Deno.serve` answering a constant, 64 connections, so figures from
 *   machines of different speed can be read as a share of what the runtime itself does;
 * - HTTPS (`-https-listen-cert/-key`, `-check-interval=1s`, 64 connections, HTTP/1.1 by wrk),
 *   next to a bare `Deno.serve` over TLS;
 * - first byte on a new connection (`--first-byte`, alone): curl's `time_starttransfer` over 30
 *   new connections each (median and p90) for plain HTTP/1.1, HTTPS HTTP/1.1 and h2, mTLS h2,
 *   and a bare `Deno.serve` over TLS (HTTP/1.1 and h2), answering from memory.
 * - the probe's fast path (`--fast-path` runs only this): median wall, CPU and peak RSS of 10
 *   runs against SERVING plaintext and TLS (`-tls-ca-cert`) upstreams, next to a bare
 *   `deno run` hello and to the same probe forced onto grpc-js, with the ratios to the hello.
 *
 * `--probe-only`, `--server-only`, `--https-only`, `--first-byte`, `--fast-path`, `--memory`
 * (tools/bench_memory.ts) and `--status-page` (tools/bench_status_page.ts, alone: health
 * throughput with a headless Chromium polling `/status`) run one part. Needs `wrk`, `curl`,
 * `/usr/bin/time` and for `--status-page` `chromium` (`apt-get install wrk curl time chromium`);
 * a part whose tool is missing says SKIPPED.
 *
 * @module
 */

import { HealthFixture } from "../tests/fixture/health_server.ts";
import { startRawUpstream } from "../tests/fixture/raw_upstream.ts";
import { PATH_SWITCH } from "../lib/probe.ts";
import { median } from "./soak.ts";
import { benchIdleBreakdown, benchMemory } from "./bench_memory.ts";
import { benchStatusPage } from "./bench_status_page.ts";

const root = new URL("..", import.meta.url).pathname;
/** How `deno task start` runs main.ts (deno.json): permissions and V8 flags, as users run it. */
const perms = (JSON.parse(Deno.readTextFileSync(`${root}deno.json`)).tasks.start as string)
  .split(/\s+/).filter((w) => w.startsWith("--"));
const args = new Set(Deno.args);

async function has(tool: string): Promise<boolean> {
  try {
    const out = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).output();
    return out.success;
  } catch {
    return false;
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Median wall time (measured around the spawn) and peak RSS (GNU time) of probe runs. */
async function benchProbe(fixture: HealthFixture, label: string, script: string[]): Promise<void> {
  if (!(await has("/usr/bin/time"))) {
    console.log("SKIPPED probe start-up: /usr/bin/time missing (apt-get install time)");
    return;
  }
  const walls: number[] = [];
  const rss: number[] = [];
  const runs = 21;
  for (let i = 0; i < runs + 1; i++) {
    const started = performance.now();
    const out = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "%M", Deno.execPath(), "run", ...perms, ...script, `-addr=${fixture.target}`],
      stderr: "piped",
    }).output();
    const wall = performance.now() - started;
    const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
    if (out.code !== 0) throw new Error(`probe failed: ${lines.join(" ")}`);
    if (i === 0) continue; // warms the cache
    walls.push(wall);
    rss.push(Number(lines.at(-1)) / 1024);
  }
  console.log(
    `probe, ${label} (SERVING, plaintext, ${runs} runs): median ${median(walls).toFixed(0)} ms ` +
      `wall, median peak RSS ${median(rss).toFixed(1)} MB (max ${Math.max(...rss).toFixed(1)} MB)`,
  );
}

/** Median wall (around the spawn), CPU (user + system) and peak RSS of one command. */
interface RunFigures {
  wallMs: number;
  cpuMs: number;
  rssMb: number;
}

/** A command to measure, and its label. */
interface Measured {
  label: string;
  argv: string[];
  env?: Record<string, string>;
}

/** One run of `argv` under GNU time: wall, CPU and peak RSS. */
async function runOnce(m: Measured): Promise<RunFigures> {
  const started = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%U %S %M", ...m.argv],
    env: m.env ?? {},
    stdout: "null",
    stderr: "piped",
  }).output();
  const wallMs = performance.now() - started;
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  if (out.code !== 0) throw new Error(`${m.label} failed: ${lines.join(" ")}`);
  const [user, sys, kb] = lines.at(-1)!.split(" ").map(Number);
  return { wallMs, cpuMs: (user + sys) * 1000, rssMb: kb / 1024 };
}

/**
 * Medians of `runs` runs of each command, run in rounds (each command once per round, after one
 * warm-up round) so that a shared machine's load changes weigh on all of them alike.
 */
async function measureRounds(commands: Measured[], runs = 10): Promise<RunFigures[]> {
  const all: RunFigures[][] = commands.map(() => []);
  for (let round = 0; round < runs + 1; round++) {
    for (const [i, m] of commands.entries()) {
      const f = await runOnce(m);
      if (round > 0) all[i].push(f); // round 0 warms the cache
    }
  }
  return all.map((fs) => ({
    wallMs: median(fs.map((f) => f.wallMs)),
    cpuMs: median(fs.map((f) => f.cpuMs)),
    rssMb: median(fs.map((f) => f.rssMb)),
  }));
}

/**
 * The probe's fast path against a bare `deno run` hello (the floor of any Deno program) and
 * against the same probe forced onto grpc-js, for a SERVING plaintext and TLS upstream. The
 * issue's targets: at most 1.35x the hello's wall time and at most 8 MB above its peak RSS.
 */
async function benchFastPath(): Promise<void> {
  if (!(await has("/usr/bin/time"))) {
    console.log("SKIPPED probe fast path: /usr/bin/time missing (apt-get install time)");
    return;
  }
  const plain = await HealthFixture.start();
  const tls = await HealthFixture.start({ tls: "tls" });
  try {
    const deno = Deno.execPath();
    // Run as main.ts is (same directory, so the same deno.json is read): the ratios are the
    // probe's own cost.
    const hello = `${root}tools/hello.ts`;
    const ca = `${root}certs/ca.pem`;
    const probe = (flags: string[]) => [deno, "run", ...perms, `${root}main.ts`, ...flags];
    const plainFlags = [`-addr=${plain.target}`];
    const tlsFlags = [`-addr=${tls.target}`, "-tls", `-tls-ca-cert=${ca}`];
    const grpcJs = { [PATH_SWITCH]: "grpc-js" };
    const commands: Measured[] = [
      { label: "hello, deno run tools/hello.ts (ratios are to this)", argv: [deno, "run", hello] },
      {
        label: "hello + one HTTP/2 preface over Deno.connect (the floor of the fast path)",
        argv: [deno, "run", "--allow-net", hello, "tcp", "127.0.0.1", `${plain.port}`],
      },
      {
        label: "hello + one h2c fetch (Deno's own HTTP/2 client, for comparison)",
        argv: [deno, "run", "--allow-net", hello, "fetch", "127.0.0.1", `${plain.port}`],
      },
      {
        label: "hello + one Deno.connectTls handshake (the floor of TLS)",
        argv: [
          ...[deno, "run", "--allow-net", "--allow-read", hello],
          ...["tls", "127.0.0.1", `${tls.port}`, ca],
        ],
      },
      { label: "probe, SERVING plaintext, fast path", argv: probe(plainFlags) },
      { label: "probe, SERVING plaintext, forced grpc-js", argv: probe(plainFlags), env: grpcJs },
      { label: "probe, SERVING TLS -tls-ca-cert, fast path", argv: probe(tlsFlags) },
      {
        label: "probe, SERVING TLS -tls-ca-cert, forced grpc-js",
        argv: probe(tlsFlags),
        env: grpcJs,
      },
    ];
    const runs = 10;
    const figures = await measureRounds(commands, runs);
    const h = figures[0];
    console.log(`probe fast path (${runs} runs each, in rounds; medians):`);
    for (const [i, f] of figures.entries()) {
      const rss = f.rssMb - h.rssMb;
      console.log(
        `  ${commands[i].label}: ${f.wallMs.toFixed(0)} ms wall ` +
          `(${(f.wallMs / h.wallMs).toFixed(2)}x), ${f.cpuMs.toFixed(0)} ms CPU, peak RSS ` +
          `${f.rssMb.toFixed(1)} MB (${rss >= 0 ? "+" : ""}${rss.toFixed(1)} MB)`,
      );
    }
  } finally {
    await Promise.all([plain.stop(), tls.stop()]);
  }
}

interface WrkResult {
  requests: number;
  rps: number;
  p50: string;
  p99: string;
  non2xx: number;
}

async function wrk(url: string, connections: number, seconds: number): Promise<WrkResult> {
  const out = await new Deno.Command("wrk", {
    args: ["-t2", `-c${connections}`, `-d${seconds}s`, "--latency", url],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    requests: num(/(\d+) requests in/),
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: /^\s+50%\s+(\S+)/m.exec(text)?.[1] ?? "?",
    p99: /^\s+99%\s+(\S+)/m.exec(text)?.[1] ?? "?",
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
  };
}

/** What the server benchmark needs of an upstream: where it is and how many RPCs it saw. */
interface CountingUpstream {
  target: string;
  checkCount(): number;
  resetCounts(): void;
}

/**
 * The yardstick: `Deno.serve` answering a constant `SERVING` with nothing else, so that figures
 * from machines of different speed can be compared as a share of what the runtime itself does.
 */
const bareServer = (port: number, tls = false) =>
  `Deno.serve({ hostname: "127.0.0.1", port: ${port}, onListen() {}` +
  (tls
    ? `, cert: Deno.readTextFileSync(${JSON.stringify(cert("server.pem"))}), ` +
      `key: Deno.readTextFileSync(${JSON.stringify(cert("server-key.pem"))})`
    : "") +
  `}, () => new Response("SERVING\\n", { headers: { "content-type": "text/plain" } }));`;
const cert = (name: string) => `${root}certs/${name}`;

/** A bare `Deno.serve` whose every answer is one Check of `target` through a grpc-js channel. */
const grpcJsServer = (target: string) => (port: number) =>
  `import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
const client = new grpc.Client(${JSON.stringify(target)}, grpc.credentials.createInsecure());
const check = () => new Promise((resolve) => client.makeUnaryRequest(
  "/grpc.health.v1.Health/Check", (b) => Buffer.from(b), (b) => b, new Uint8Array(),
  (err) => resolve(err ? "ERROR" : "SERVING")));
Deno.serve({ hostname: "127.0.0.1", port: ${port}, onListen() {} },
  async () => new Response(await check()));`;
/** The proxy's flags for an HTTPS listener, and with client certificates (mTLS). */
const httpsFlags = [
  `-https-listen-cert=${cert("server.pem")}`,
  `-https-listen-key=${cert("server-key.pem")}`,
];
const mtlsFlags = [...httpsFlags, "-https-listen-verify", `-https-listen-ca=${cert("ca.pem")}`];
const noUpstream: CountingUpstream = {
  target: "none",
  checkCount: () => 0,
  resetCounts: () => {},
};

/** How {@link startServer} departs from running main.ts as `deno task start` does. */
interface StartOptions {
  /** A script (given its port) to run on stdin instead of main.ts. */
  script?: (port: number) => string;
  /** Replaces the V8 flags of `deno task start` (to compare against other settings). */
  v8Flags?: string;
  /** Added to the `deno run` command line. */
  denoFlags?: string[];
}

/** A proxy (main.ts with `flags`) or, for `noUpstream`, a bare `Deno.serve`, answering on `url`. */
async function startServer(
  fixture: CountingUpstream,
  flags: string[],
  tls: boolean,
  { script, v8Flags, denoFlags = [] }: StartOptions = {},
): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const port = freePort();
  const yardstick = fixture === noUpstream;
  // The yardstick's script comes on stdin, so it runs with --allow-net (and --allow-read for
  // its certificate) alone (`deno eval` would grant every permission); another script also
  // gets the import map and --allow-env (grpc-js reads its GRPC_* variables).
  const stdinScript = yardstick ? bareServer(port, tls) : script?.(port);
  const proxy = new Deno.Command(Deno.execPath(), {
    args: yardstick
      ? ["run", "--allow-net", "--allow-read", "-"]
      : script
      ? ["run", `--config=${root}deno.json`, "--allow-net", "--allow-read", "--allow-env", "-"]
      : [
        "run",
        ...perms.map((w) => v8Flags && w.startsWith("--v8-flags=") ? `--v8-flags=${v8Flags}` : w),
        ...denoFlags,
        `${root}main.ts`,
        `-grpcaddr=${fixture.target}`,
        `-http-listen-addr=127.0.0.1:${port}`,
        "-metrics-http-listen-addr=",
        ...flags,
      ],
    stdin: stdinScript ? "piped" : "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  if (stdinScript) {
    const writer = proxy.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdinScript));
    await writer.close();
  }
  const url = `${tls ? "https" : "http"}://127.0.0.1:${port}/`;
  // Ready once a TCP connection is accepted (answers need no upstream with -check-interval).
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await new Promise((r) => setTimeout(r, 1500)); // the first -check-interval check
  return {
    url,
    pid: proxy.pid,
    async stop() {
      proxy.kill("SIGTERM");
      await proxy.status;
    },
  };
}

async function benchServer(
  fixture: CountingUpstream,
  label: string,
  flags: string[],
  connections: number,
  tls = false,
): Promise<void> {
  if (!(await has("wrk"))) {
    console.log(`SKIPPED ${label}: wrk missing (apt-get install wrk)`);
    return;
  }
  const yardstick = fixture === noUpstream;
  const server = await startServer(fixture, flags, tls);
  const url = server.url;
  try {
    await wrk(url, connections, 2); // warm-up (JIT, connections)
    fixture.resetCounts();
    const seconds = 10;
    const r = await wrk(url, connections, seconds);
    const rpcs = fixture.checkCount();
    const upstream = yardstick ? "" : `, ${rpcs} upstream RPCs ` +
      `(${(r.requests / Math.max(rpcs, 1)).toFixed(1)} HTTP requests per RPC, ` +
      `${(rpcs / seconds).toFixed(1)} RPC/s)`;
    console.log(
      `${label}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50}, p99 ${r.p99}, ` +
        `${r.requests} requests (${r.non2xx} non-2xx)${upstream}`,
    );
  } finally {
    await server.stop();
  }
}

/**
 * Time to the first byte of an answer on a new connection (connect, TLS handshake, request),
 * curl's `time_starttransfer`, over `runs` connections: median and p90 in ms.
 */
async function benchFirstByte(
  fixture: CountingUpstream,
  label: string,
  flags: string[],
  curlArgs: string[],
  tls: boolean,
  runs = 30,
): Promise<void> {
  const server = await startServer(fixture, flags, tls);
  const ms: number[] = [];
  let failed = 0;
  try {
    const port = new URL(server.url).port;
    // localhost (the certificate's name) resolved to where the server listens.
    const url = tls ? `https://localhost:${port}/` : server.url;
    const args = ["-s", "-o", "/dev/null", "--resolve", `localhost:${port}:127.0.0.1`];
    args.push("--cacert", cert("ca.pem"), "-w", "%{http_code} %{time_starttransfer}");
    for (let i = 0; i < runs + 2; i++) {
      const out = await new Deno.Command("curl", {
        args: [...args, ...curlArgs, url],
        stdout: "piped",
      })
        .output();
      const [code, seconds] = new TextDecoder().decode(out.stdout).split(" ");
      if (i < 2) continue; // warm-up
      if (code !== "200") failed++;
      else ms.push(Number(seconds) * 1000);
    }
  } finally {
    await server.stop();
  }
  ms.sort((a, b) => a - b);
  const p90 = ms[Math.ceil(ms.length * 0.9) - 1];
  console.log(
    `first byte, new connection, ${label} (${runs} runs): median ${median(ms).toFixed(1)} ms, ` +
      `p90 ${p90.toFixed(1)} ms, max ${ms.at(-1)!.toFixed(1)} ms, over 30 ms: ` +
      `${ms.filter((t) => t > 30).length}${failed ? `, ${failed} not 200` : ""}`,
  );
}

/** The `--first-byte` part: every listener and protocol, and the bare TLS yardstick. */
async function firstBytes(fixture: HealthFixture): Promise<void> {
  if (!(await has("curl"))) {
    console.log("SKIPPED first byte: curl missing (apt-get install curl)");
    return;
  }
  const memory = ["-check-interval=1s"];
  const client = ["--cert", cert("client.pem"), "--key", cert("client-key.pem")];
  const parts: [CountingUpstream, string, string[], string[], boolean][] = [
    [noUpstream, "bare Deno.serve over TLS, HTTP/1.1", [], ["--http1.1"], true],
    [noUpstream, "bare Deno.serve over TLS, h2", [], ["--http2"], true],
    [fixture, "plain HTTP/1.1", memory, ["--http1.1"], false],
    [fixture, "HTTPS HTTP/1.1", [...memory, ...httpsFlags], ["--http1.1"], true],
    [fixture, "HTTPS h2", [...memory, ...httpsFlags], ["--http2"], true],
    [fixture, "mTLS h2", [...memory, ...mtlsFlags], ["--http2", ...client], true],
  ];
  for (const [upstream, label, flags, curlArgs, tls] of parts) {
    await benchFirstByte(upstream, label, flags, curlArgs, tls);
  }
}

if (import.meta.main) {
  const fixture = await HealthFixture.start();
  try {
    console.log(`deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores`);
    const only = [
      "--probe-only",
      "--server-only",
      "--https-only",
      "--first-byte",
      "--fast-path",
      "--memory",
      "--status-page",
    ]
      .find((a) => args.has(a));
    if (!only || only === "--probe-only") {
      await benchProbe(fixture, "deno run main.ts", [`${root}main.ts`]);
      const build = await new Deno.Command(Deno.execPath(), {
        args: [
          "bundle",
          "--platform=deno",
          "--minify",
          "--output=/tmp/ghp_bench.js",
          `${root}main.ts`,
        ],
        stdout: "null",
        stderr: "null",
      }).output();
      if (build.success) {
        await benchProbe(fixture, "bundle (deno task build)", ["--no-config", "/tmp/ghp_bench.js"]);
      }
    }
    if (!only || only === "--probe-only" || only === "--fast-path") await benchFastPath();
    if (!only || only === "--server-only") {
      await benchServer(noUpstream, "yardstick: bare Deno.serve, 64 connections", [], 64);
      await benchServer(fixture, "server, on-demand checks, 16 connections", [], 16);
      // The same against a minimal HTTP/2 gRPC responder: grpc-js's server under Deno costs
      // the shared 2 cores more than a production upstream (Go, C++, Java) would.
      const lean = await startRawUpstream("serving");
      let base = 0;
      try {
        await benchServer(
          {
            target: lean.target,
            checkCount: () => lean.requests - base,
            resetCounts: () => void (base = lean.requests),
          },
          "server, on-demand checks, 16 connections, minimal h2 upstream",
          [],
          16,
        );
      } finally {
        await lean.close();
      }
      await benchServer(
        fixture,
        "server, -check-interval=1s, 64 connections",
        ["-check-interval=1s"],
        64,
      );
    }
    if (!only || only === "--https-only") {
      await benchServer(
        noUpstream,
        "yardstick: bare Deno.serve over TLS, 64 connections",
        [],
        64,
        true,
      );
      await benchServer(
        fixture,
        "server, HTTPS, -check-interval=1s, 64 connections",
        ["-check-interval=1s", ...httpsFlags],
        64,
        true,
      );
    }
    if (!only || only === "--first-byte") await firstBytes(fixture);
    if (!only || only === "--memory") {
      const memoryBench = {
        yardstick: () => startServer(noUpstream, [], false),
        grpcJsServer: () =>
          startServer(fixture, [], false, { script: grpcJsServer(fixture.target) }),
        proxy: (flags: string[], v8Flags?: string, denoFlags?: string[]) =>
          startServer(fixture, flags, false, { v8Flags, denoFlags }),
        load: (url: string) => wrk(url, 16, 10),
        freePort,
      };
      await benchMemory(memoryBench);
      await benchIdleBreakdown(memoryBench);
    }
    // Alone: it takes a minute and a browser.
    if (only === "--status-page") {
      if (!(await has("wrk")) || !(await has("chromium"))) {
        console.log("SKIPPED status page: wrk or chromium missing (apt-get install wrk chromium)");
      } else {
        await benchStatusPage({
          proxy: (flags) => startServer(fixture, flags, false),
          load: (url) => wrk(url, 64, 10),
          freePort,
        });
      }
    }
  } finally {
    await fixture.stop();
  }
}
