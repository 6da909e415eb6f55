/**
 * `deno task bench --memory`: server mode's resident memory (VmRSS) idle, right after a fixed
 * on-demand load (16 keep-alive HTTP/1.1 clients, 10 s, `wrk`) and 15 s later (the heap is
 * collected once a burst is over: lib/heap_release.ts), for on-demand checks and
 * `-check-interval=1s`, next to bench's bare `Deno.serve` yardstick measured the same way, and
 * each mode again with the V8 flags `deno task start` had before (throughput and CPU per request
 * compared in the same run); then the README's bounds, and where the idle figure goes (a bare
 * server that checks through grpc-js, the proxy with and without a metrics listener, without
 * Deno's code cache). The figures in docs/performance.md ("Memory") come from it.
 *
 * @module
 */

import { median, vmRssMb } from "./soak.ts";

/** A started server: where it answers, its process, how to stop it. */
interface Started {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** What bench.ts lends: its servers and its load generator. */
export interface MemoryBench {
  yardstick(): Promise<Started>;
  /** A bare `Deno.serve` that answers each request with one Check through a grpc-js channel. */
  grpcJsServer(): Promise<Started>;
  /** The proxy as `deno task start` runs it, or with other V8 flags, or more `deno run` flags. */
  proxy(flags: string[], v8Flags?: string, denoFlags?: string[]): Promise<Started>;
  load(url: string): Promise<{ rps: number }>;
  freePort(): number;
}

/**
 * The V8 flags `deno task start` had before the flags that bound the heap under load
 * (`--no-concurrent-recompilation`, `--heap-growing-percent=30`): the throughput reference.
 */
const previousV8Flags = "--max-semi-space-size=1";

/** The README's bounds: idle over the bare server, the rise under load, throughput kept. */
const memoryBounds = { idleOverBareMb: 20, riseUnderLoadMb: 30, throughputShare: 0.9 };

/** VmRSS after one answered request and a second to settle. */
async function idleMb(server: Started): Promise<number> {
  await (await fetch(server.url)).text();
  await new Promise((r) => setTimeout(r, 1000));
  return await vmRssMb(server.pid);
}

/** CPU seconds (user + system) the process has used, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stderr: "null" })
    .output();
  // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
  const fields = new TextDecoder().decode(out.stdout).split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** What the comparison uses of one server's run: idle, right after the load, req/s, CPU. */
interface Figures {
  idle: number;
  after: number;
  rps: number;
  cpuUsPerRequest: number;
}

/**
 * Idle, right after the load and 15 s later, for one started server; prints one line. A `quick`
 * measurement (a round of the throughput comparison) skips the 15 s and prints nothing.
 */
async function measure(
  label: string,
  server: Started,
  bench: MemoryBench,
  quick = false,
): Promise<Figures> {
  try {
    const idle = await idleMb(server);
    const cpuBefore = await cpuSeconds(server.pid);
    const { rps } = await bench.load(server.url);
    const after = await vmRssMb(server.pid);
    const cpuUsPerRequest = (await cpuSeconds(server.pid) - cpuBefore) * 1e6 / (rps * 10);
    const figures = { idle, after, rps, cpuUsPerRequest };
    if (quick) return figures;
    await new Promise((r) => setTimeout(r, 15_000));
    const later = await vmRssMb(server.pid);
    const mb = (n: number) => `${n.toFixed(1)} MB`;
    console.log(
      `  ${label}: idle ${mb(idle)}, after the load ${mb(after)} (+${
        (after - idle).toFixed(1)
      }), ` +
        `15 s later ${mb(later)} (+${(later - idle).toFixed(1)}); ` +
        `${rps.toFixed(0)} req/s, ${cpuUsPerRequest.toFixed(1)} us CPU per request`,
    );
    return figures;
  } finally {
    await server.stop();
  }
}

/** Rounds of the throughput comparison: single 10 s runs on a shared machine vary by 20-50 %. */
const ROUNDS = 3;

/**
 * One line: a shipped configuration against the README's bounds, and its throughput and CPU per
 * request against the previous V8 flags' (medians of alternating rounds).
 */
function boundsLine(
  label: string,
  bare: Figures,
  shipped: Figures[],
  before: Figures[],
): string {
  const overBare = shipped[0].idle - bare.idle;
  const rise = median(shipped.map((f) => f.after - f.idle));
  const share = median(shipped.map((f) => f.rps)) / median(before.map((f) => f.rps));
  const cpu = median(shipped.map((f) => f.cpuUsPerRequest)) /
    median(before.map((f) => f.cpuUsPerRequest));
  const mark = (ok: boolean) => ok ? "ok" : "OVER";
  const { idleOverBareMb, riseUnderLoadMb, throughputShare } = memoryBounds;
  return `  ${label}: idle +${overBare.toFixed(1)} MB over bare (bound ${idleOverBareMb}, ${
    mark(overBare <= idleOverBareMb)
  }); +${rise.toFixed(1)} MB under load (bound ${riseUnderLoadMb}, ${
    mark(rise <= riseUnderLoadMb)
  }); req/s ${(share * 100).toFixed(0)} % of the previous V8 flags' (bound ${
    throughputShare * 100
  } %, ${mark(share >= throughputShare)}), CPU per request ${(cpu * 100).toFixed(0)} %`;
}

/** Prints the memory figures. */
export async function benchMemory(bench: MemoryBench): Promise<void> {
  console.log("server memory (VmRSS; wrk -t2 -c16 -d10s):");
  const bare = await measure("bare Deno.serve (yardstick)", await bench.yardstick(), bench);
  const modes: [string, string[]][] = [
    ["on demand", []],
    ["-check-interval=1s", ["-check-interval=1s"]],
  ];
  const lines: string[] = [];
  for (const [mode, flags] of modes) {
    const shipped = [await measure(`server, ${mode}`, await bench.proxy(flags), bench)];
    const before = [
      await measure(
        `server, ${mode}, V8 flags ${previousV8Flags}`,
        await bench.proxy(flags, previousV8Flags),
        bench,
      ),
    ];
    // More rounds, alternating, for the throughput comparison (no 15 s wait, not printed).
    for (let round = 1; round < ROUNDS; round++) {
      shipped.push(await measure(mode, await bench.proxy(flags), bench, true));
      before.push(await measure(mode, await bench.proxy(flags, previousV8Flags), bench, true));
    }
    const rounds = (figures: Figures[]) =>
      figures.map((f) => `${f.rps.toFixed(0)}/${f.cpuUsPerRequest.toFixed(1)}`).join(", ");
    console.log(
      `  ${mode}, req/s / us CPU per request in ${ROUNDS} rounds: shipped ${
        rounds(shipped)
      }; previous flags ${rounds(before)}`,
    );
    lines.push(boundsLine(mode, bare, shipped, before));
  }
  console.log(`against the bounds (README, Memory; medians of ${ROUNDS} rounds):`);
  for (const line of lines) console.log(line);
}

/** Where the idle figure goes: each line is one configuration, idle, against the bare server. */
export async function benchIdleBreakdown(bench: MemoryBench): Promise<void> {
  console.log("idle breakdown (VmRSS after one answered request):");
  const metrics = `-metrics-http-listen-addr=127.0.0.1:${bench.freePort()}`;
  const lines: [string, () => Promise<Started>][] = [
    ["bare Deno.serve", () => bench.yardstick()],
    ["bare Deno.serve + a grpc-js channel, one Check per request", () => bench.grpcJsServer()],
    ["server, on demand, no metrics listener", () => bench.proxy([])],
    ["server, on demand, metrics listener (prom-client)", () => bench.proxy([metrics])],
    // Not shipped: a probe that goes through grpc-js starts ~1.3x slower without the cache.
    [
      "server, on demand, deno run --no-code-cache",
      () => bench.proxy([], undefined, ["--no-code-cache"]),
    ],
  ];
  let bare = 0;
  for (const [label, start] of lines) {
    const server = await start();
    try {
      const mb = await idleMb(server);
      bare ||= mb;
      console.log(`  ${label}: ${mb.toFixed(1)} MB (+${(mb - bare).toFixed(1)})`);
    } finally {
      await server.stop();
    }
  }
}
