/**
 * The two one-shot modes: probe (grpc-health-probe compatible) and runcli (grpc_health_proxy
 * v1.2.1 `-runcli` compatible). Both check every configured service once, print what happened
 * on stderr and return the exit code the status table gives for the worst outcome.
 *
 * @module
 */

import { formatGoDuration } from "./duration.ts";
import { type CheckResult, probeExit, runcliExit, statusTable, worstResult } from "./status.ts";
import {
  CONNECT_TIMEOUT,
  UpstreamConfigError,
  UpstreamHealth,
  type UpstreamOptions,
} from "./upstream.ts";

/** The one-shot modes. */
export type OneShotMode = "probe" | "runcli";

/** What a one-shot check needs: the upstream options plus the services to check. */
export interface OneShotOptions extends UpstreamOptions {
  services: readonly string[];
  /** glog-style verbosity: > 0 prints connection and timing lines. */
  verbosity: number;
}

/** Where a one-shot check writes and how it is cancelled. */
export interface OneShotIo {
  /** Writes one line (without newline) to stderr. */
  print: (line: string) => void;
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
 * Runs a one-shot check of every service and returns the exit code. Unreadable TLS files are
 * invalid arguments. The channel is closed gracefully before this returns.
 */
export async function runOneShot(
  mode: OneShotMode,
  opts: OneShotOptions,
  io: OneShotIo,
): Promise<number> {
  const invalid = mode === "probe" ? probeExit.INVALID_ARGUMENTS : runcliExit.INVALID_ARGUMENTS;
  let upstream: UpstreamHealth;
  try {
    upstream = new UpstreamHealth(opts);
  } catch (err) {
    if (err instanceof UpstreamConfigError) {
      io.print(`error: ${err.message}`);
      return invalid;
    }
    throw err;
  }
  try {
    const verbose = opts.verbosity > 0;
    if (verbose) io.print(`establishing connection to "${upstream.target}"`);
    const started = performance.now();
    const results: CheckResult[] = [];
    // One service after another on one channel: the first one pays for the connection.
    for (const service of opts.services) {
      const previous = results.at(-1);
      // Without a connection the other services cannot be checked either: do not wait again.
      results.push(
        previous?.outcome === "CONNECTION_FAILED"
          ? { ...previous, service }
          : await upstream.explain(await upstream.check(service, io.signal)),
      );
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
  } finally {
    upstream.close();
  }
}
