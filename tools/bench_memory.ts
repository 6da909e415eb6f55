/**
 * `deno task bench --memory`: server mode's resident memory (VmRSS) idle, right after a fixed
 * on-demand load (16 keep-alive HTTP/1.1 clients, 10 s, `wrk`) and 15 s later (the heap is
 * collected once a burst is over: lib/heap_release.ts), for on-demand checks and
 * `-check-interval=1s`, next to a bare `Deno.serve` of the same Deno measured the same way. The
 * figures in docs/performance.md ("Memory") come from it.
 *
 * @module
 */

import type { HealthFixture } from "../tests/fixture/health_server.ts";
import { spawnMain, stopMain, watchListening } from "../tests/fixture/main_process.ts";
import { vmRssMb } from "./soak.ts";

const BARE = `Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) =>
  console.error("INFO listening url=" + JSON.stringify("http://127.0.0.1:" + port)) },
  () => new Response("SERVING\\n"));`;

async function load(url: string): Promise<string> {
  const out = await new Deno.Command("wrk", {
    args: ["-t2", "-c16", "-d10s", url],
    stdout: "piped",
  }).output();
  return /Requests\/sec:\s+([\d.]+)/.exec(new TextDecoder().decode(out.stdout))?.[1] ?? "?";
}

/** Idle, right after the load and 15 s later, for one started server process. */
async function measure(label: string, pid: number, url: string): Promise<void> {
  await (await fetch(url)).text();
  await new Promise((r) => setTimeout(r, 1000));
  const idle = await vmRssMb(pid);
  const rps = await load(url);
  const after = await vmRssMb(pid);
  await new Promise((r) => setTimeout(r, 15_000));
  const later = await vmRssMb(pid);
  const mb = (n: number) => `${n.toFixed(1)} MB`;
  console.log(
    `  ${label}: idle ${mb(idle)}, after the load ${mb(after)} (+${(after - idle).toFixed(1)}), ` +
      `15 s later ${mb(later)} (+${(later - idle).toFixed(1)}); ${rps} req/s`,
  );
}

/** Prints the memory figures; `fixture` is the upstream. */
export async function benchMemory(fixture: HealthFixture): Promise<void> {
  console.log("server memory (VmRSS; wrk -t2 -c16 -d10s):");
  const bare = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = bare.stdin.getWriter();
  await writer.write(new TextEncoder().encode(BARE));
  await writer.close();
  const yardstick = await watchListening(bare, {});
  try {
    await measure("bare Deno.serve (yardstick)", bare.pid, yardstick.urls[0]);
  } finally {
    await stopMain(yardstick);
  }
  for (
    const [label, flags] of [["on demand", []], ["-check-interval=1s", ["-check-interval=1s"]]]
  ) {
    const proc = await spawnMain([
      `-grpcaddr=${fixture.target}`,
      "-http-listen-addr=127.0.0.1:0",
      "-metrics-http-listen-addr=",
      ...flags,
    ]);
    try {
      await measure(`server, ${label}`, proc.child.pid, proc.urls[0]);
    } finally {
      await stopMain(proc);
    }
  }
}
