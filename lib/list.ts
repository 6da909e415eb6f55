/**
 * `Health/List` (gRFC A90) as this program answers it: what one List call came to, the outcome
 * that speaks for the whole list, and the bodies of the list path. Pure: the upstream call is
 * in `upstream.ts`, the routing in `handler.ts`, the one-shot `-list` in `probe.ts`.
 *
 * Rules (README, docs/list.md): the list is SERVING only when it names at least one service
 * and every listed service is SERVING; an empty list is UNKNOWN (nothing said SERVING, as when
 * a server has not set any status yet); a failed call is the status table's row for it.
 *
 * @module
 */

import { explanations, serviceEntry, shownName } from "./body_text.ts";
import { type CheckResult, type Outcome, statusTable, worstResult } from "./status.ts";
import { outcomeOfStatus } from "./upstream_options.ts";

/**
 * What one `Health/List` call came to: every listed service's outcome, sorted by name, or the
 * failure of the call itself (a result for service `""`, e.g. UNIMPLEMENTED without List).
 */
export type ListResult =
  | { readonly results: readonly CheckResult[] }
  | { readonly failure: CheckResult };

/** Calls `Health/List` on the upstream; resolves, never rejects. */
export type HealthLister = (signal?: AbortSignal) => Promise<ListResult>;

/** The most entries a list body shows; the rest are counted (`... N more`, `"omitted": N`). */
export const MAX_LISTED = 1000;

/** What a body says for an empty list. */
const NO_SERVICES = "upstream lists no services";

/** What a body says when the upstream has no List (its Check may still work). */
const NO_LIST = "upstream does not implement Health/List";

/** `[service, status number]` pairs from the wire as results, sorted by name (code points). */
export function listedResults(pairs: readonly (readonly [string, number])[]): CheckResult[] {
  return pairs
    .map(([service, status]) => ({ service, outcome: outcomeOfStatus(status) }))
    .sort((a, b) => a.service < b.service ? -1 : a.service > b.service ? 1 : 0);
}

/**
 * The outcome that speaks for the whole list: the failure's when the call failed; else the
 * worst listed outcome (SERVING when all are); UNKNOWN for an empty list. Exit codes are the
 * status table's for it.
 */
export function listOutcome(r: ListResult): Outcome {
  if ("failure" in r) return r.failure.outcome;
  return r.results.length === 0 ? "UNKNOWN" : worstResult(r.results).outcome;
}

/**
 * The HTTP status of the list path: 200 when the list is SERVING, 503 for any other answer
 * (a listed SERVICE_UNKNOWN is not a missing page), the status table's row for a failed call
 * (501 without List, 503 for connection failures and deadlines).
 */
export function listHttpStatus(r: ListResult): number {
  const outcome = listOutcome(r);
  if ("failure" in r) return statusTable[outcome].http;
  return outcome === "SERVING" ? 200 : 503;
}

/** Why the list has no entries (failed call, empty list), from fixed text only. */
export function listReason(r: ListResult): string | undefined {
  if ("failure" in r) {
    return r.failure.outcome === "UNIMPLEMENTED" ? NO_LIST : explanations[r.failure.outcome];
  }
  return r.results.length === 0 ? NO_SERVICES : undefined;
}

/**
 * A listed name as a text line shows it: escaped and cut like every name in a body, spaces
 * escaped too (so `<service> <STATUS>` splits at the last space), and `""` for the empty name.
 */
export function listedName(name: string): string {
  return name === "" ? '""' : shownName(name).replaceAll(" ", "\\u{20}");
}

/**
 * The body of the list path. Text: `<service> <STATUS>` per listed service, then
 * `... N more` when more than `max` are listed; `<reason> (<OUTCOME>)` when there are none.
 * JSON: `{"status", "reason"?, "services": [{service, status, reason}], "omitted"?}`.
 */
export function listBody(r: ListResult, json: boolean, max = MAX_LISTED): string {
  const outcome = listOutcome(r);
  const reason = listReason(r);
  const results = "results" in r ? r.results : [];
  const kept = results.slice(0, max);
  const omitted = results.length - kept.length;
  if (json) {
    const out: Record<string, unknown> = { status: outcome };
    if (reason) out.reason = reason;
    out.services = kept.map(serviceEntry);
    if (omitted > 0) out.omitted = omitted;
    return JSON.stringify(out) + "\n";
  }
  if (reason) return `${reason} (${outcome})\n`;
  const lines = kept.map((e) => `${listedName(e.service)} ${e.outcome}\n`).join("");
  return omitted > 0 ? lines + `... ${omitted} more\n` : lines;
}
