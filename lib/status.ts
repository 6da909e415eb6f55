/**
 * The one status table: how each upstream outcome maps to an HTTP status (server mode) and to
 * the exit codes of runcli mode (grpc_health_proxy v1.2.1) and probe mode (grpc-health-probe),
 * with every exit code the program uses, named. Every mode reads this module; nothing else
 * decides these numbers.
 *
 * @module
 */

import type { Mode } from "./flags.ts";

/** Exit codes of probe mode, as grpc-health-probe names them. */
export const probeExit = {
  SUCCESS: 0,
  INVALID_ARGUMENTS: 1,
  CONNECTION_FAILURE: 2,
  RPC_FAILURE: 3,
  UNHEALTHY: 4,
} as const;

/** Exit codes of runcli mode, as grpc_health_proxy v1.2.1 names them. */
export const runcliExit = {
  SUCCESS: 0,
  CONNECTION_FAILURE: 1,
  RPC_FAILURE: 2,
  SERVICE_NOT_FOUND: 3,
  UNIMPLEMENTED: 4,
  UNHEALTHY: 5,
  INVALID_ARGUMENTS: 255,
} as const;

/** Exit code of server mode when it cannot start (grpc_health_proxy dies via glog.Fatal). */
export const SERVER_START_FAILED = 255;

/** Exit code for invalid arguments, per mode (grpc_health_proxy dies via glog.Fatal: 255). */
export const invalidArgumentExit: Readonly<Record<Mode, number>> = {
  probe: probeExit.INVALID_ARGUMENTS,
  runcli: runcliExit.INVALID_ARGUMENTS,
  server: SERVER_START_FAILED,
};

/** What one health check of one service came to. */
export type Outcome =
  | "SERVING"
  | "NOT_SERVING"
  | "UNKNOWN"
  | "SERVICE_UNKNOWN"
  | "NOT_FOUND"
  | "UNIMPLEMENTED"
  | "DEADLINE_EXCEEDED"
  | "RPC_ERROR"
  | "CONNECTION_FAILED";

/** One row of {@link statusTable}. */
export interface StatusRow {
  /** HTTP status in server mode. */
  readonly http: number;
  /** Exit code in runcli mode. */
  readonly runcli: number;
  /** Exit code in probe mode. */
  readonly probe: number;
  /** Ranks outcomes when several services are checked: the highest is reported. */
  readonly severity: number;
  /**
   * Whether the upstream answered the health RPC at all, even with an error (liveness): only
   * an unreachable upstream or a timeout counts as not answering.
   */
  readonly answered: boolean;
  /**
   * The `code` label of `grpc_health_check_service_requests`, as grpc_health_proxy v1.2.1
   * spells it (the serving status, or Go's `codes.Code` name). v1.2.1 counts nothing when it
   * cannot connect; `Unavailable` (gRPC's code for that) keeps those checks visible.
   */
  readonly metricCode: string;
}

/**
 * Outcome -> HTTP status and exit codes (the README's status table is generated from it). The
 * outcome's name is what HTTP bodies say: it never carries upstream internals.
 */
export const statusTable: Readonly<Record<Outcome, StatusRow>> = {
  SERVING: {
    http: 200,
    runcli: runcliExit.SUCCESS,
    probe: probeExit.SUCCESS,
    severity: 0,
    answered: true,
    metricCode: "SERVING",
  },
  NOT_SERVING: {
    http: 503,
    runcli: runcliExit.UNHEALTHY,
    probe: probeExit.UNHEALTHY,
    severity: 2,
    answered: true,
    metricCode: "NOT_SERVING",
  },
  UNKNOWN: {
    http: 503,
    runcli: runcliExit.UNHEALTHY,
    probe: probeExit.UNHEALTHY,
    severity: 2,
    answered: true,
    metricCode: "UNKNOWN",
  },
  SERVICE_UNKNOWN: {
    http: 404,
    runcli: runcliExit.UNHEALTHY,
    probe: probeExit.UNHEALTHY,
    severity: 1,
    answered: true,
    metricCode: "SERVICE_UNKNOWN",
  },
  NOT_FOUND: {
    http: 404,
    runcli: runcliExit.SERVICE_NOT_FOUND,
    probe: probeExit.RPC_FAILURE,
    severity: 3,
    answered: true,
    metricCode: "NotFound",
  },
  UNIMPLEMENTED: {
    http: 501,
    runcli: runcliExit.UNIMPLEMENTED,
    probe: probeExit.RPC_FAILURE,
    severity: 4,
    answered: true,
    metricCode: "Unimplemented",
  },
  DEADLINE_EXCEEDED: {
    http: 503,
    runcli: runcliExit.RPC_FAILURE,
    probe: probeExit.RPC_FAILURE,
    severity: 5,
    answered: false,
    metricCode: "DeadlineExceeded",
  },
  RPC_ERROR: {
    http: 503,
    runcli: runcliExit.UNHEALTHY,
    probe: probeExit.RPC_FAILURE,
    severity: 6,
    answered: true,
    metricCode: "Unknown",
  },
  CONNECTION_FAILED: {
    http: 503,
    runcli: runcliExit.CONNECTION_FAILURE,
    probe: probeExit.CONNECTION_FAILURE,
    severity: 7,
    answered: false,
    metricCode: "Unavailable",
  },
};

/** The result of checking one service. */
export interface CheckResult {
  /** The service that was checked (`""` is the server's overall health). */
  readonly service: string;
  readonly outcome: Outcome;
  /**
   * Human-readable cause for logs and CLI output (may name the upstream); never put in HTTP
   * bodies.
   */
  readonly detail?: string;
}

/** Checks one service on the upstream; resolves, never rejects. */
export type HealthChecker = (service: string, signal?: AbortSignal) => Promise<CheckResult>;

/** The result that decides the answer when several services are checked: the most severe. */
export function worstResult(results: readonly CheckResult[]): CheckResult {
  if (results.length === 0) throw new RangeError("worstResult needs at least one result");
  return results.reduce((worst, r) =>
    statusTable[r.outcome].severity > statusTable[worst.outcome].severity ? r : worst
  );
}

/** The status table as a Markdown table, for the README (kept true by `deno task readme`). */
export function statusTableMarkdown(): string {
  const rows = Object.entries(statusTable).map(([outcome, r]) =>
    `| ${outcome} | ${r.http} | ${r.runcli} | ${r.probe} | ${r.answered ? 200 : 503} | ` +
    `\`${r.metricCode}\` |`
  );
  return [
    "| upstream outcome | HTTP (readiness path) | runcli exit | probe exit | liveness path | " +
    "metric `code` |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n") + "\n";
}
