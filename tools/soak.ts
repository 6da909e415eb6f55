/**
 * `deno task soak [--seconds N] [--rate R] [--seed S] [--mode on-demand|background|both]`: a
 * bounded soak of server mode (default: 60 s per mode, 200 req/s, seed 1, both modes).
 *
 * The real `main.ts` runs as a subprocess in front of a {@link HealthFixture} whose `""` status
 * flips SERVING <-> NOT_SERVING every 2-3 s (randomised from the seed), once with on-demand checks
 * and once with `-check-interval=500ms`. Keep-alive request loops send a steady rate of requests
 * (200 req/s by default) and record every answer with its send and receive time. Each answer must
 * agree with the upstream state at some moment it could have been checked:
 *
 * - on-demand: between send (minus {@link ON_DEMAND_MARGIN_MS}, as a request may join a check
 *   that was already in flight) and receive;
 * - background: between send minus (interval x threshold + rpc timeout + 100 ms) and receive.
 *
 * The fixture runs in this process, on the same event loop as the request loops, so the
 * recorded flip times are exactly the times its answers changed. Any other answer (an HTTP error,
 * a status other than 200 SERVING / 503 NOT_SERVING) is a contradiction too.
 *
 * It also reads the subprocess's RSS (`/proc/<pid>/status` VmRSS, and the metrics'
 * `process_resident_memory_bytes`) after the warm-up and at the end, and checks that the
 * subprocess printed no stack trace and exited 0 on SIGTERM. `tests/slow/soak_test.ts` runs a short
 * version of the same.
 *
 * @module
 */

import { HealthFixture } from "../tests/fixture/health_server.ts";
import { spawnMain } from "../tests/fixture/main_process.ts";
import { prng } from "../tests/helpers.ts";

/** How checks are made: on each request, or in the background every 500 ms. */
export type SoakMode = "on-demand" | "background";

/** Options of {@link soak}. */
export interface SoakOptions {
  mode: SoakMode;
  /** Total load duration, warm-up included. */
  seconds: number;
  /** Requests per second, over all loops (default 200). */
  rate?: number;
  /** Concurrent keep-alive request loops (default 4). */
  loops?: number;
  /** Seed of the flip schedule (default 1). */
  seed?: number;
  /** Background check interval in ms (default 500). */
  intervalMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** One answer the proxy gave. */
interface Answer {
  sent: number;
  received: number;
  /** `200 SERVING`, `503 NOT_SERVING`, ... or `error: ...` when the HTTP request failed. */
  answer: string;
}

/** What a soak observed. */
export interface SoakResult {
  mode: SoakMode;
  seconds: number;
  requests: number;
  /** Answers that agree with no upstream state of their window (HTTP errors included). */
  contradictions: number;
  /** Up to 10 contradictions, described. */
  samples: string[];
  /** Requests that failed at the HTTP level. */
  httpErrors: number;
  /** Count of each distinct answer. */
  answers: Record<string, number>;
  flips: number;
  /** "upstream state changed" log lines of the proxy. */
  loggedStateChanges: number;
  /** VmRSS of the subprocess after the warm-up and at the end, in MB. */
  rssStartMb: number;
  rssEndMb: number;
  /** The metrics' process_resident_memory_bytes at the same moments, in MB. */
  metricsRssStartMb: number;
  metricsRssEndMb: number;
  /** VmRSS through the run (every `seconds / 12`, at least every 2 s): [seconds, MB]. */
  rssCurve: [number, number][];
  /** The lag allowed before the send time, in ms. */
  lagMs: number;
  /** Latency of answers, ms. */
  p50Ms: number;
  p99Ms: number;
  /** Exit code of the proxy after SIGTERM. */
  exitCode: number;
  /** Lines of the proxy's stderr that look like a stack trace or an uncaught error. */
  crashLines: string[];
}

/** On-demand: how long before the send a shared in-flight check may have started. */
export const ON_DEMAND_MARGIN_MS = 50;
/** Background: slack on top of interval x threshold + rpc timeout. */
export const BACKGROUND_MARGIN_MS = 100;
/** `deno task soak` fails when RSS grows more than this over the last third of a run. */
const LATE_GROWTH_BOUND_MB = 20;
/** The proxy's default -rpc-timeout, used by the soak. */
const RPC_TIMEOUT_MS = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * VmRSS of a process in MB (NaN when it cannot be read). Read through `cat`: Deno lets a script
 * read `/proc/<pid>/` only with `--allow-all`, and the soak runs with explicit permissions.
 */
export async function vmRssMb(pid: number): Promise<number> {
  try {
    const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stderr: "null" })
      .output();
    const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(new TextDecoder().decode(out.stdout))?.[1]);
    return kb / 1024;
  } catch {
    return NaN;
  }
}

async function metricsRssMb(url: string): Promise<number> {
  try {
    const text = await (await fetch(url)).text();
    const bytes = Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)?.[1]);
    return bytes / (1024 * 1024);
  } catch {
    return NaN;
  }
}

/** Lines that show a crash: a stack frame, an uncaught error, a panic. */
export function crashLines(output: string): string[] {
  return output.split("\n").filter((l) =>
    /^\s+at |Uncaught|panicked|Segmentation fault|Aborted/.test(l)
  );
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** The median of `xs` (the upper middle one of an even count), as the benches report it. */
export function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 0.5);
}

/** Runs one soak and returns what it saw. Throws only when the proxy cannot be started. */
export async function soak(opts: SoakOptions): Promise<SoakResult> {
  const rate = opts.rate ?? 200;
  const loops = opts.loops ?? 4;
  const intervalMs = opts.intervalMs ?? 500;
  const random = prng(opts.seed ?? 1);
  const log = opts.log ?? (() => {});
  const durationMs = opts.seconds * 1000;
  const warmupMs = Math.min(3000, durationMs / 4);
  const threshold = 1; // -healthy-threshold and -unhealthy-threshold (defaults)
  const lagMs = opts.mode === "on-demand"
    ? ON_DEMAND_MARGIN_MS
    : intervalMs * threshold + RPC_TIMEOUT_MS + BACKGROUND_MARGIN_MS;

  const fixture = await HealthFixture.start();
  // Port 0: the listening lines say where; no port is picked, released and bound later.
  const proxy = await spawnMain([
    `-grpcaddr=${fixture.target}`,
    "-http-listen-addr=127.0.0.1:0",
    "-metrics-http-listen-addr=127.0.0.1:0",
    ...(opts.mode === "background" ? [`-check-interval=${intervalMs}ms`] : []),
  ], { listeners: 2, timeoutMs: 30_000 });
  const child = proxy.child;
  const output = proxy.finished.then((r) => [r.stdout, r.stderr]);
  if (proxy.urls.length < 2) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    throw new Error(`the proxy did not start:\n${(await output).join("")}`);
  }
  const url = `${proxy.urls[0]}/`;
  const metricsUrl = `${proxy.urls[1]}/metrics`;

  try {
    // Wait until it answers at all.
    const startedAt = performance.now();
    for (;;) {
      try {
        const res = await fetch(url);
        await res.body?.cancel();
        break;
      } catch {
        if (performance.now() - startedAt > 20_000) throw new Error("the proxy did not start");
        await sleep(50);
      }
    }

    const t0 = performance.now();
    const end = t0 + durationMs;
    /** Upstream states over time: [time, SERVING?]. The first entry is the state before t0. */
    const timeline: [number, boolean][] = [[-Infinity, true]];
    let serving = true;

    const flipper = (async () => {
      for (;;) {
        const next = performance.now() + 2000 + random() * 1000;
        if (next >= end) return;
        await sleep(next - performance.now());
        serving = !serving;
        // Synchronous with respect to the fixture's answers: same event loop.
        const t = performance.now();
        fixture.setStatus("", serving ? "SERVING" : "NOT_SERVING");
        timeline.push([t, serving]);
        log(
          `  flip at ${((t - t0) / 1000).toFixed(2)} s -> ${serving ? "SERVING" : "NOT_SERVING"}`,
        );
      }
    })();

    const answers: Answer[] = [];
    const period = (1000 * loops) / rate;
    const loop = async (index: number) => {
      let k = 0;
      for (;;) {
        const due = t0 + (index * period) / loops + k * period;
        k++;
        if (due >= end) return;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const sent = performance.now();
        let answer: string;
        try {
          const res = await fetch(url);
          answer = `${res.status} ${(await res.text()).trim()}`;
        } catch (err) {
          answer = `error: ${(err as Error).message}`;
        }
        answers.push({ sent, received: performance.now(), answer });
      }
    };
    const running = Promise.all(Array.from({ length: loops }, (_, i) => loop(i)));

    const rssCurve: [number, number][] = [];
    const sampler = (async () => {
      const every = Math.max(2000, durationMs / 12);
      for (let at = every; at < durationMs; at += every) {
        await sleep(t0 + at - performance.now());
        rssCurve.push([Math.round(at / 1000), await vmRssMb(child.pid)]);
      }
    })();

    await sleep(t0 + warmupMs - performance.now());
    const rssStartMb = await vmRssMb(child.pid);
    const metricsRssStartMb = await metricsRssMb(metricsUrl);
    log(`  after ${warmupMs / 1000} s warm-up: RSS ${rssStartMb.toFixed(1)} MB`);
    await running;
    await flipper;
    await sampler;
    const rssEndMb = await vmRssMb(child.pid);
    const metricsRssEndMb = await metricsRssMb(metricsUrl);

    // Judge every answer against the states its window allows.
    const stateAt = (t: number): boolean => {
      let s = timeline[0][1];
      for (const [at, v] of timeline) {
        if (at <= t) s = v;
        else break;
      }
      return s;
    };
    const statesIn = (from: number, to: number): Set<boolean> => {
      const states = new Set([stateAt(from)]);
      for (const [at, v] of timeline) if (at > from && at <= to) states.add(v);
      return states;
    };
    const counts: Record<string, number> = {};
    const samples: string[] = [];
    let contradictions = 0;
    let httpErrors = 0;
    for (const a of answers) {
      counts[a.answer] = (counts[a.answer] ?? 0) + 1;
      if (a.answer.startsWith("error:")) httpErrors++;
      const claimed = a.answer === "200 SERVING"
        ? true
        : a.answer === "503 NOT_SERVING"
        ? false
        : undefined;
      const allowed = statesIn(a.sent - lagMs, a.received);
      if (claimed === undefined || !allowed.has(claimed)) {
        contradictions++;
        if (samples.length < 10) {
          samples.push(
            `sent ${((a.sent - t0) / 1000).toFixed(3)} s, received ${
              ((a.received - t0) / 1000).toFixed(3)
            } s: "${a.answer}", upstream ${
              [...allowed].map((s) => s ? "SERVING" : "NOT_SERVING").join("/")
            }`,
          );
        }
      }
    }
    const latencies = answers.map((a) => a.received - a.sent).sort((a, b) => a - b);

    child.kill("SIGTERM");
    const status = await child.status;
    const [stdout, stderr] = await output;
    return {
      mode: opts.mode,
      seconds: (performance.now() - t0) / 1000,
      requests: answers.length,
      contradictions,
      samples,
      httpErrors,
      answers: counts,
      flips: timeline.length - 1,
      loggedStateChanges: stderr.split("\n").filter((l) => l.includes("upstream state changed"))
        .length,
      rssStartMb,
      rssEndMb,
      metricsRssStartMb,
      metricsRssEndMb,
      rssCurve,
      lagMs,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      exitCode: status.code,
      crashLines: crashLines(stdout + "\n" + stderr),
    };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
    await fixture.stop();
  }
}

/** One line per soak, for logs and the README. */
export function summary(r: SoakResult): string {
  const mb = (x: number) => `${x.toFixed(1)} MB`;
  return [
    `${r.mode.padEnd(10)} ${r.seconds.toFixed(1)} s`,
    `${r.requests} requests (${(r.requests / r.seconds).toFixed(0)}/s)`,
    `${r.contradictions} contradictions (lag allowed ${r.lagMs} ms)`,
    `${r.httpErrors} HTTP errors`,
    `${r.flips} flips (${r.loggedStateChanges} logged state changes)`,
    `RSS ${mb(r.rssStartMb)} -> ${mb(r.rssEndMb)} (${(r.rssEndMb - r.rssStartMb) >= 0 ? "+" : ""}${
      (r.rssEndMb - r.rssStartMb).toFixed(1)
    } MB; metrics ${mb(r.metricsRssStartMb)} -> ${mb(r.metricsRssEndMb)})`,
    `latency p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms`,
    `exit ${r.exitCode}`,
  ].join(", ");
}

function flag(args: string[], name: string, fallback: number): number {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return fallback;
  const raw = args[i].includes("=") ? args[i].slice(args[i].indexOf("=") + 1) : args[i + 1];
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`--${name} needs a positive number, got ${JSON.stringify(raw)}`);
  }
  return value;
}

if (import.meta.main) {
  let seconds: number, rate: number, seed: number;
  let modes: SoakMode[] = ["on-demand", "background"];
  try {
    seconds = flag(Deno.args, "seconds", 60);
    rate = flag(Deno.args, "rate", 200);
    seed = flag(Deno.args, "seed", 1);
    const i = Deno.args.findIndex((a) => a === "--mode" || a.startsWith("--mode="));
    const mode = i < 0
      ? "both"
      : Deno.args[i].includes("=")
      ? Deno.args[i].slice("--mode=".length)
      : Deno.args[i + 1];
    if (mode === "on-demand" || mode === "background") modes = [mode];
    else if (mode !== "both") throw new Error(`--mode is on-demand, background or both`);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    console.error("usage: deno task soak [--seconds N] [--rate R] [--seed S] [--mode M]");
    Deno.exit(2);
  }
  console.log(
    `deno ${Deno.version.deno}, soak: ${seconds} s per mode, ${rate} req/s, seed ${seed}`,
  );
  let failed = false;
  for (const mode of modes) {
    console.log(`${mode}:`);
    const r = await soak({ mode, seconds, rate, seed, log: (l) => console.log(l) });
    console.log(summary(r));
    console.log(`  answers: ${JSON.stringify(r.answers)}`);
    console.log(
      `  RSS over time: ${r.rssCurve.map(([t, mb]) => `${t}s ${mb.toFixed(0)}`).join(", ")} MB`,
    );
    for (const s of r.samples) console.log(`  contradiction: ${s}`);
    for (const l of r.crashLines) console.log(`  crash output: ${l}`);
    // A leak keeps growing; the heap's warm-up growth levels off (see the RSS curve).
    const lastThird = r.rssCurve.filter(([t]) => t >= (2 * r.seconds) / 3);
    const lateGrowth = lastThird.length ? r.rssEndMb - lastThird[0][1] : NaN;
    console.log(`  RSS growth over the last third: ${lateGrowth.toFixed(1)} MB`);
    if (r.contradictions > 0 || r.crashLines.length > 0 || r.exitCode !== 0) failed = true;
    if (lateGrowth > LATE_GROWTH_BOUND_MB) failed = true;
  }
  Deno.exit(failed ? 1 : 0);
}
