/**
 * `deno task bench`: measures what the README reports, on this machine, with load generator,
 * proxy and upstream sharing it.
 *
 * - probe start-up: median wall time and peak RSS of `main.ts -addr=...` against a SERVING
 *   upstream (GNU time, 15 runs, warm cache);
 * - server mode: wrk with 16 keep-alive HTTP/1.1 connections for 10 s against a SERVING
 *   upstream (on-demand checks), reporting req/s, p99 and the HTTP-requests-per-RPC ratio.
 *
 * Needs `wrk` and `/usr/bin/time` (`apt-get install wrk time`); a part whose tool is missing
 * says SKIPPED.
 *
 * @module
 */

import { HealthFixture } from "../tests/fixture/health_server.ts";

const root = new URL("..", import.meta.url).pathname;
const perms = ["--allow-net", "--allow-read", "--allow-write", "--allow-env"];
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function benchProbe(fixture: HealthFixture): Promise<void> {
  if (!(await has("/usr/bin/time"))) {
    console.log("SKIPPED probe start-up: /usr/bin/time missing (apt-get install time)");
    return;
  }
  const walls: number[] = [];
  const rss: number[] = [];
  const runs = 15;
  for (let i = 0; i < runs + 1; i++) {
    const out = await new Deno.Command("/usr/bin/time", {
      args: [
        "-f",
        "%e %M",
        Deno.execPath(),
        "run",
        ...perms,
        `${root}main.ts`,
        `-addr=${fixture.target}`,
      ],
      stderr: "piped",
    }).output();
    const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
    if (out.code !== 0) throw new Error(`probe failed: ${lines.join(" ")}`);
    const [wall, kb] = lines.at(-1)!.split(" ").map(Number);
    if (i === 0) continue; // warms the cache
    walls.push(wall * 1000);
    rss.push(kb / 1024);
  }
  console.log(
    `probe (SERVING, plaintext, ${runs} runs): median ${median(walls).toFixed(0)} ms wall, ` +
      `median peak RSS ${median(rss).toFixed(1)} MB, max peak RSS ${
        Math.max(...rss).toFixed(1)
      } MB`,
  );
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
    p50: /50%\s+(\S+)/.exec(text)?.[1] ?? "?",
    p99: /99%\s+(\S+)/.exec(text)?.[1] ?? "?",
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
  };
}

async function benchServer(
  fixture: HealthFixture,
  label: string,
  flags: string[],
  connections: number,
): Promise<void> {
  if (!(await has("wrk"))) {
    console.log(`SKIPPED ${label}: wrk missing (apt-get install wrk)`);
    return;
  }
  const port = freePort();
  const proxy = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...perms,
      `${root}main.ts`,
      `-grpcaddr=${fixture.target}`,
      `-http-listen-addr=127.0.0.1:${port}`,
      "-metrics-http-listen-addr=",
      ...flags,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}/`;
  try {
    for (let i = 0; i < 100; i++) {
      try {
        const r = await fetch(url);
        await r.body?.cancel();
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await wrk(url, connections, 2); // warm-up (JIT, connections)
    fixture.resetCounts();
    const seconds = 10;
    const r = await wrk(url, connections, seconds);
    const rpcs = fixture.checkCount();
    console.log(
      `${label}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50}, p99 ${r.p99}, ` +
        `${r.requests} requests (${r.non2xx} non-2xx), ${rpcs} upstream RPCs ` +
        `(${(r.requests / Math.max(rpcs, 1)).toFixed(1)} HTTP requests per RPC, ` +
        `${(rpcs / seconds).toFixed(1)} RPC/s)`,
    );
  } finally {
    proxy.kill("SIGTERM");
    await proxy.status;
  }
}

if (import.meta.main) {
  const fixture = await HealthFixture.start();
  try {
    console.log(`deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores`);
    if (!args.has("--server-only")) await benchProbe(fixture);
    if (!args.has("--probe-only")) {
      await benchServer(fixture, "server, on-demand checks, 16 connections", [], 16);
    }
  } finally {
    await fixture.stop();
  }
}
