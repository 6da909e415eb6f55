/**
 * The one status table: how each upstream outcome maps to an HTTP status (server mode) and to
 * the exit codes of runcli mode (grpc_health_proxy v1.2.1) and probe mode (grpc-health-probe).
 * Every mode reads this table; nothing else decides these numbers.
 *
 * @module
 */

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
  /**
   * Short reason for HTTP bodies; for health statuses it is the status name. It never carries
   * upstream internals (addresses, error text).
   */
  readonly reason: string;
  /** Ranks outcomes when several services are checked: the highest is reported. */
  readonly severity: number;
  /**
   * Whether the upstream answered the health RPC at all, even with an error (liveness): only
   * an unreachable upstream or a timeout counts as not answering.
   */
  readonly answered: boolean;
}

/** Outcome -> HTTP status and exit codes, as in the SPEC's server-mode table. */
export const statusTable: Readonly<Record<Outcome, StatusRow>> = {
  SERVING: { http: 200, runcli: 0, probe: 0, reason: "SERVING", severity: 0, answered: true },
  NOT_SERVING: {
    http: 503,
    runcli: 5,
    probe: 4,
    reason: "NOT_SERVING",
    severity: 2,
    answered: true,
  },
  UNKNOWN: { http: 503, runcli: 5, probe: 4, reason: "UNKNOWN", severity: 2, answered: true },
  SERVICE_UNKNOWN: {
    http: 404,
    runcli: 5,
    probe: 4,
    reason: "SERVICE_UNKNOWN",
    severity: 1,
    answered: true,
  },
  NOT_FOUND: {
    http: 404,
    runcli: 3,
    probe: 3,
    reason: "NOT_FOUND",
    severity: 3,
    answered: true,
  },
  UNIMPLEMENTED: {
    http: 501,
    runcli: 4,
    probe: 3,
    reason: "UNIMPLEMENTED",
    severity: 4,
    answered: true,
  },
  DEADLINE_EXCEEDED: {
    http: 503,
    runcli: 2,
    probe: 3,
    reason: "DEADLINE_EXCEEDED",
    severity: 5,
    answered: false,
  },
  RPC_ERROR: { http: 503, runcli: 5, probe: 3, reason: "RPC_ERROR", severity: 6, answered: true },
  CONNECTION_FAILED: {
    http: 503,
    runcli: 1,
    probe: 2,
    reason: "CONNECTION_FAILED",
    severity: 7,
    answered: false,
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
    `| ${outcome} | ${r.http} | ${r.runcli} | ${r.probe} | ${r.answered ? 200 : 503} |`
  );
  return [
    "| upstream outcome | HTTP (readiness path) | runcli exit | probe exit | liveness path |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n") + "\n";
}
