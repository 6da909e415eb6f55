/**
 * The two one-shot modes: probe (grpc-health-probe compatible) and runcli (grpc_health_proxy
 * v1.2.1 `-runcli` compatible). Both check every configured service once, print what happened
 * on stderr and return the exit code the status table gives for the worst outcome.
 *
 * @module
 */

import { formatGoDuration } from "./duration.ts";
import { type CheckResult, invalidArgumentExit, statusTable, worstResult } from "./status.ts";
import { FastHealth } from "./fast_check.ts";
import { CONNECT_TIMEOUT, dialTarget, type UpstreamOptions } from "./upstream_options.ts";
import { listedName, listOutcome } from "./list.ts";
// grpc-js (upstream.ts) is imported only when the fast path cannot decide: loading it and
// node:http2 costs more than the whole check otherwise (docs/performance.md).

/** The one-shot modes. */
export type OneShotMode = "probe" | "runcli";

/** What a one-shot check needs: the upstream options plus the services to check. */
export interface OneShotOptions extends UpstreamOptions {
  services: readonly string[];
  /** glog-style verbosity: > 0 prints connection and timing lines. */
  verbosity: number;
  /** `-list`: list every service with `Health/List` instead of checking {@link services}. */
  list?: boolean;
}

/** Where a one-shot check writes and how it is cancelled. */
export interface OneShotIo {
  /** Writes one line (without newline) to stderr. */
  print: (line: string) => void;
  /** Writes one line of results (`-list`'s entries) to stdout; {@link print} when not given. */
  out?: (line: string) => void;
  /** Aborts the check (SIGINT/SIGTERM in the real program). */
  signal?: AbortSignal;
}

/** The line grpc-health-probe prints for a result. */
export function probeLine(r: CheckResult, opts: OneShotOptions): string {
  switch (r.outcome) {
    case "SERVING":
      return "status: SERVING";
    case "NOT_SERVING":
    case "UNKNOWN":
    case "SERVICE_UNKNOWN":
      return `service unhealthy (responded with "${r.outcome}")`;
    case "UNIMPLEMENTED":
      return `error: this server does not implement the grpc health protocol ` +
        `(grpc.health.v1.Health): ${r.detail}`;
    case "DEADLINE_EXCEEDED":
      return `timeout: health rpc did not complete within ${formatGoDuration(opts.rpcTimeoutMs)}`;
    case "NOT_FOUND":
    case "RPC_ERROR":
      return `error: health rpc failed: ${r.detail}`;
    case "CONNECTION_FAILED":
      return r.detail === CONNECT_TIMEOUT
        ? `timeout: failed to connect service "${opts.addr}" within ` +
          formatGoDuration(opts.connectTimeoutMs)
        : `error: failed to connect service at "${opts.addr}": ${r.detail}`;
  }
}

/** The line grpc_health_proxy's `-runcli` prints for a result. */
export function runcliLine(r: CheckResult, opts: OneShotOptions): string {
  const name = r.service;
  if (r.outcome === "SERVING") return `${name} SERVING`.trim();
  let cause: string;
  switch (r.outcome) {
    case "NOT_SERVING":
    case "UNKNOWN":
    case "SERVICE_UNKNOWN":
      cause = `service ${JSON.stringify(name)} failed with reason: ${r.outcome}`;
      break;
    case "CONNECTION_FAILED":
      cause = r.detail === CONNECT_TIMEOUT
        ? `timeout: failed to connect service ${opts.addr} within ` +
          formatGoDuration(opts.connectTimeoutMs)
        : `failed to connect service at ${opts.addr}: ${r.detail}`;
      break;
    case "DEADLINE_EXCEEDED":
      cause = `timeout: health rpc did not complete within ${formatGoDuration(opts.rpcTimeoutMs)}`;
      break;
    case "NOT_FOUND":
      cause = `service ${JSON.stringify(name)} not found: ${r.detail}`;
      break;
    case "UNIMPLEMENTED":
      cause = `this server does not implement the grpc health protocol ` +
        `(grpc.health.v1.Health): ${r.detail}`;
      break;
    case "RPC_ERROR":
      cause = `health rpc failed: ${r.detail}`;
      break;
  }
  return `HealthCheck Probe Error: ${cause}`;
}

/**
 * How long the fast path may take before grpc-js is asked instead: a quarter of the connect
 * timeout, at most this. grpc-js then gets the rest of the connect timeout, so a silent upstream
 * fails to connect as late as it always did.
 */
const FAST_PATH_GRACE_MS = 250;

/** grpc-js's error for a call the client cancelled, as `grpcErrorDetail` spells it. */
const CANCELLED_ON_CLIENT = "rpc error: code = Canceled desc = Cancelled on client";

/**
 * Test-only switch (not a user flag): `grpc-js` skips the fast path, `fast` lets it wait a
 * quarter of the connect timeout however long that is (so a slow test machine still exercises
 * it). The differential test and the benchmark use it.
 */
export const PATH_SWITCH = "GRPC_HEALTH_PROXY_TEST_PATH";

function pathSwitch(): string | undefined {
  try {
    return Deno.env.get(PATH_SWITCH);
  } catch {
    return undefined;
  }
}

/**
 * Checks the services on the fast path, in order, until one is not definitively answered or the
 * grace period is over; returns the results it has and the time it took.
 */
async function fastChecks(
  opts: OneShotOptions,
  io: OneShotIo,
  verbose: boolean,
): Promise<CheckResult[]> {
  const forced = pathSwitch();
  if (forced === "grpc-js") return [];
  const fast = await FastHealth.open(opts);
  if (!(fast instanceof FastHealth)) {
    if (verbose) io.print(`fast path: not used (${fast.unsupported})`);
    return [];
  }
  const quarter = opts.connectTimeoutMs / 4;
  const grace = forced === "fast" ? quarter : Math.min(FAST_PATH_GRACE_MS, quarter);
  const timeout = AbortSignal.timeout(Math.max(1, grace));
  const signal = io.signal ? AbortSignal.any([timeout, io.signal]) : timeout;
  const results: CheckResult[] = [];
  try {
    for (const service of opts.services) {
      // Cancelled before the call went out: grpc-js says so as it always did.
      if (io.signal?.aborted) break;
      const answer = await fast.check(service, signal);
      if ("fallback" in answer && io.signal?.aborted) {
        // Cancelled while the call was out: what grpc-js says when it cancels a call.
        if (verbose) io.print("fast path: cancelled");
        results.push({ service, outcome: "RPC_ERROR", detail: CANCELLED_ON_CLIENT });
        break;
      }
      if ("fallback" in answer) {
        const why = timeout.aborted ? `no answer within ${grace}ms` : answer.fallback;
        if (verbose) io.print(`fast path: asking grpc-js (${why})`);
        break;
      }
      results.push(answer.result);
    }
  } finally {
    fast.close();
  }
  return results;
}

let grpcJsLoaded = false;

/** Whether a check used grpc-js (whose connections may still be closing). */
export function grpcJsUsed(): boolean {
  return grpcJsLoaded;
}

/** grpc-js's upstream client, loaded on first use. */
type Upstream = InstanceType<typeof import("./upstream.ts").UpstreamHealth>;

/**
 * Opens a grpc-js channel to the upstream, hands it to `use` and closes it after; unreadable
 * TLS material is a `configError` (an invalid argument).
 */
async function withGrpcJs<T>(
  opts: OneShotOptions,
  connectBudgetMs: number,
  use: (upstream: Upstream) => Promise<T>,
): Promise<T | { configError: string }> {
  grpcJsLoaded = true;
  const { UpstreamConfigError, UpstreamHealth } = await import("./upstream.ts");
  let upstream: Upstream;
  try {
    upstream = new UpstreamHealth({ ...opts, connectTimeoutMs: connectBudgetMs });
  } catch (err) {
    if (err instanceof UpstreamConfigError) return { configError: err.message };
    throw err;
  }
  try {
    return await use(upstream);
  } finally {
    upstream.close();
  }
}

/** Checks `services` with grpc-js, one after another on one channel. */
function grpcJsChecks(
  opts: OneShotOptions,
  services: readonly string[],
  connectBudgetMs: number,
  io: OneShotIo,
): Promise<CheckResult[] | { configError: string }> {
  return withGrpcJs(opts, connectBudgetMs, async (upstream) => {
    const results: CheckResult[] = [];
    // The first one pays for the connection.
    for (const service of services) {
      const previous = results.at(-1);
      // Without a connection the other services cannot be checked either: do not wait again.
      results.push(
        previous?.outcome === "CONNECTION_FAILED"
          ? { ...previous, service }
          : await upstream.explain(await upstream.check(service, io.signal)),
      );
    }
    return results;
  });
}

/**
 * `-list`: one `Health/List` call through grpc-js; every listed service and its status on
 * stdout (sorted, one line each), what went wrong on stderr, and the status table's exit code
 * for the list's outcome (SERVING only when at least one service is listed and all are).
 */
async function runList(mode: OneShotMode, opts: OneShotOptions, io: OneShotIo): Promise<number> {
  const listed = await withGrpcJs(opts, opts.connectTimeoutMs, async (upstream) => {
    const r = await upstream.list(io.signal);
    return "failure" in r ? { failure: await upstream.explain(r.failure) } : r;
  });
  if ("configError" in listed) {
    io.print(`error: ${listed.configError}`);
    return invalidArgumentExit[mode];
  }
  const out = io.out ?? io.print;
  if ("results" in listed) {
    for (const r of listed.results) out(`${listedName(r.service)} ${r.outcome}`);
    if (listed.results.length === 0) {
      io.print("no services listed: the upstream's Health/List answered an empty list");
    }
  } else if (listed.failure.outcome === "UNIMPLEMENTED") {
    const cause = "this server does not implement Health/List (grpc.health.v1.Health/List): " +
      listed.failure.detail;
    io.print(mode === "probe" ? `error: ${cause}` : `HealthCheck Probe Error: ${cause}`);
  } else {
    io.print((mode === "probe" ? probeLine : runcliLine)(listed.failure, opts));
  }
  return statusTable[listOutcome(listed)][mode];
}

/**
 * Runs a one-shot check of every service and returns the exit code: on the fast path when it
 * answers definitively, else with grpc-js. Unreadable TLS files are invalid arguments. The
 * connections are closed gracefully before this returns.
 */
export async function runOneShot(
  mode: OneShotMode,
  opts: OneShotOptions,
  io: OneShotIo,
): Promise<number> {
  const invalid = invalidArgumentExit[mode];
  const verbose = opts.verbosity > 0;
  if (verbose) io.print(`establishing connection to "${dialTarget(opts.addr)}"`);
  if (opts.list) return await runList(mode, opts, io);
  const started = performance.now();
  const results = await fastChecks(opts, io, verbose);
  const rest = opts.services.slice(results.length);
  if (rest.length > 0) {
    // The fast path's time comes off the connect timeout: the worst case stays as it was.
    const spent = Math.round(performance.now() - started);
    const checked = await grpcJsChecks(opts, rest, Math.max(1, opts.connectTimeoutMs - spent), io);
    if (verbose) io.print("answered by grpc-js");
    if ("configError" in checked) {
      io.print(`error: ${checked.configError}`);
      return invalid;
    }
    results.push(...checked);
  } else if (verbose) {
    io.print("answered by the fast path (its own HTTP/2 client)");
  }
  if (verbose) {
    io.print(`time elapsed: ${formatGoDuration(Math.round(performance.now() - started))}`);
  }
  const line = mode === "probe" ? probeLine : runcliLine;
  const several = results.length > 1;
  for (const r of results) {
    const text = line(r, opts);
    io.print(several ? `service ${JSON.stringify(r.service)}: ${text}` : text);
  }
  const worst = statusTable[worstResult(results).outcome];
  return mode === "probe" ? worst.probe : worst.runcli;
}
