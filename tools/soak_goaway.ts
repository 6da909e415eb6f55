/**
 * `deno task soak:goaway [--seconds N]`: server mode in front of an upstream that sends GOAWAY on
 * every connection it accepts, under `wrk -c16` for N seconds (default 20), then 15 s idle.
 * Prints the subprocess's RSS over time, the connections the upstream accepted, the answers per
 * second and the log lines: the figures in docs/faults.md ("An upstream that drops every
 * connection"). Needs `wrk` (apt-get install wrk).
 *
 * @module
 */

import { startRawUpstream } from "../tests/fixture/raw_upstream.ts";
import { spawnMain, stopMain } from "../tests/fixture/main_process.ts";
import { vmRssMb } from "./soak.ts";

const at = Deno.args.indexOf("--seconds");
const seconds = at >= 0 ? Number(Deno.args[at + 1]) : 20;
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error("--seconds wants a positive number, e.g. --seconds 20");
  Deno.exit(2);
}
try {
  await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" }).output();
} catch {
  console.error("wrk is not installed: apt-get install wrk");
  Deno.exit(2);
}

const upstream = await startRawUpstream("goaway");
const proc = await spawnMain([
  `-grpcaddr=${upstream.target}`,
  "-http-listen-addr=127.0.0.1:0",
  "-metrics-http-listen-addr=",
]);
const rssMb = () => vmRssMb(proc.child.pid).then(Math.round);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
try {
  await (await fetch(proc.urls[0])).text();
  await sleep(1000);
  const rows = [`idle: ${await rssMb()} MB`];
  const wrk = new Deno.Command("wrk", {
    args: ["-t2", "-c16", `-d${seconds}s`, proc.urls[0]],
    stdout: "piped",
  }).spawn();
  const samples: number[] = [];
  const sampler = setInterval(async () => samples.push(await rssMb()), 2000);
  const out = new TextDecoder().decode((await wrk.output()).stdout);
  clearInterval(sampler);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? "?";
  rows.push(`under load (every 2 s): ${samples.join(", ")} MB; ${rps} answers/s`);
  for (let i = 1; i <= 3; i++) {
    await sleep(5000);
    rows.push(`idle +${i * 5} s: ${await rssMb()} MB`);
  }
  rows.push(`connections the upstream accepted: ${upstream.connections}`);
  const { stderr } = await stopMain(proc);
  const lines = stderr.split("\n").filter((l) => l.trim());
  rows.push(`log lines: ${lines.length}`);
  console.log(rows.join("\n"));
} finally {
  await upstream.close();
}
