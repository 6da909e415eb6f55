/**
 * `deno task bench --memory`: server mode's resident memory (VmRSS) idle, right after a fixed
 * on-demand load (16 keep-alive HTTP/1.1 clients, 10 s, `wrk`) and 15 s later (the heap is
 * collected once a burst is over: lib/heap_release.ts), for on-demand checks and
 * `-check-interval=1s`, next to bench's bare `Deno.serve` yardstick measured the same way; then
 * where the idle figure goes (a bare server that checks through grpc-js, the proxy with and
 * without a metrics listener). The figures in docs/performance.md ("Memory") come from it.
 *
 * @module
 */

import { vmRssMb } from "./soak.ts";

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
  proxy(flags: string[]): Promise<Started>;
  load(url: string): Promise<{ rps: number }>;
  freePort(): number;
}

/** VmRSS after one answered request and a second to settle. */
async function idleMb(server: Started): Promise<number> {
  await (await fetch(server.url)).text();
  await new Promise((r) => setTimeout(r, 1000));
  return await vmRssMb(server.pid);
}

/** Idle, right after the load and 15 s later, for one started server. */
async function measure(label: string, server: Started, bench: MemoryBench): Promise<void> {
  try {
    const idle = await idleMb(server);
    const { rps } = await bench.load(server.url);
    const after = await vmRssMb(server.pid);
    await new Promise((r) => setTimeout(r, 15_000));
    const later = await vmRssMb(server.pid);
    const mb = (n: number) => `${n.toFixed(1)} MB`;
    console.log(
      `  ${label}: idle ${mb(idle)}, after the load ${mb(after)} (+${
        (after - idle).toFixed(1)
      }), ` +
        `15 s later ${mb(later)} (+${(later - idle).toFixed(1)}); ${rps.toFixed(2)} req/s`,
    );
  } finally {
    await server.stop();
  }
}

/** Prints the memory figures. */
export async function benchMemory(bench: MemoryBench): Promise<void> {
  console.log("server memory (VmRSS; wrk -t2 -c16 -d10s):");
  await measure("bare Deno.serve (yardstick)", await bench.yardstick(), bench);
  await measure("server, on demand", await bench.proxy([]), bench);
  await measure("server, -check-interval=1s", await bench.proxy(["-check-interval=1s"]), bench);
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
