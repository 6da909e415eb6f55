/**
 * What HTTP bodies may say, shared by the health and list answers: fixed explanations per
 * outcome and service names made safe to print. Nothing from the upstream's error text ever
 * reaches a body.
 *
 * @module
 */

import type { CheckResult, Outcome } from "./status.ts";

/** Longest service name shown in a body; longer ones are cut (the validator should stop them). */
export const MAX_SHOWN_NAME = 200;

/**
 * Fixed, human-readable explanations per outcome for JSON bodies. They come from this table, never
 * from `CheckResult.detail`, so upstream internals (addresses, error text) cannot leak.
 */
export const explanations: Readonly<Record<Outcome, string>> = {
  SERVING: "serving",
  NOT_SERVING: "upstream reports NOT_SERVING",
  UNKNOWN: "upstream reports UNKNOWN",
  SERVICE_UNKNOWN: "upstream reports SERVICE_UNKNOWN",
  NOT_FOUND: "service not found on upstream",
  UNIMPLEMENTED: "upstream does not implement the health service",
  DEADLINE_EXCEEDED: "health check timed out",
  RPC_ERROR: "health check RPC failed",
  CONNECTION_FAILED: "cannot connect to upstream",
};

/**
 * A service name made safe to print: characters outside printable ASCII are escaped and long
 * names cut. Names are validated before they get here; this is a second line of defence.
 */
export function shownName(name: string): string {
  const escaped = shown(name);
  return escaped.length > MAX_SHOWN_NAME ? escaped.slice(0, MAX_SHOWN_NAME) + "..." : escaped;
}

/**
 * Escapes everything outside printable ASCII as `\u{...}`, so no raw input reaches a body; the
 * backslash too, so a name that spells `\u{3c}` reads differently from one holding `<`.
 */
export function shown(text: string): string {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    // Markup characters too, so no body can be read as HTML whatever a client sniffs.
    out += c >= 0x20 && c < 0x7f && !`<>&"'\\`.includes(ch) ? ch : `\\u{${c.toString(16)}}`;
    if (out.length > 2 * MAX_SHOWN_NAME) break;
  }
  return out;
}

/** One service's entry in a JSON body: `{service, status, reason}` (no reason when SERVING). */
export function serviceEntry(r: CheckResult): Record<string, string> {
  const e: Record<string, string> = { service: shownName(r.service) };
  e.status = r.outcome;
  if (r.outcome !== "SERVING") e.reason = explanations[r.outcome];
  return e;
}
