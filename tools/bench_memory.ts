/**
 * `deno task bench --memory`: server mode's resident memory (VmRSS) idle, right after a fixed
 * on-demand load (16 keep-alive HTTP/1.1 clients, 10 s, `wrk`) and 15 s later (the heap is
 * collected once a burst is over: lib/heap_release.ts), for on-demand checks and
 * `-check-interval=1s`, next to bench's bare `Deno.serve` yardstick measured the same way. The
 * figures in docs/performance.md ("Memory") come from it.
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
  proxy(flags: string[]): Promise<Started>;
  load(url: string): Promise<{ rps: number }>;
}

/** Idle, right after the load and 15 s later, for one started server. */
async function measure(label: string, server: Started, bench: MemoryBench): Promise<void> {
  try {
    await (await fetch(server.url)).text();
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await vmRssMb(server.pid);
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
