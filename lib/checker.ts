/**
 * Checks as the server mode makes them: concurrent checks of one service share one in-flight
 * RPC, and the number of distinct in-flight upstream RPCs is capped so that requests naming
 * many services cannot flood the upstream.
 *
 * @module
 */

import type { CheckResult, HealthChecker } from "./status.ts";

/** Detail of the result given when the cap on in-flight upstream checks is reached. */
export const OVERLOADED = "too many concurrent upstream checks";

/** Options of {@link coalescingChecker}. */
export interface CoalescingOptions {
  /** The most distinct checks of services outside {@link reserved} in flight at once (32). */
  maxInFlight?: number;
  /**
   * Services that never count against the cap and are never refused: the configured ones,
   * which load balancers probe. A flood of names nobody configured must not starve them.
   */
  reserved?: ReadonlySet<string>;
}

/**
 * Wraps `check` so that concurrent calls for the same service share one call, and at most
 * `maxInFlight` calls for services outside `reserved` run at once (beyond that, the answer is
 * an immediate RPC_ERROR). The callers' abort signals are not passed on: one prober going away
 * must not cancel the check others wait for.
 */
export function coalescingChecker(
  check: HealthChecker,
  opts: CoalescingOptions = {},
): HealthChecker {
  const maxInFlight = opts.maxInFlight ?? 32;
  const reserved = opts.reserved ?? new Set<string>();
  const inFlight = new Map<string, Promise<CheckResult>>();
  let capped = 0; // in flight and not reserved
  return (service) => {
    const pending = inFlight.get(service);
    if (pending) return pending;
    const counts = !reserved.has(service);
    if (counts && capped >= maxInFlight) {
      return Promise.resolve({ service, outcome: "RPC_ERROR", detail: OVERLOADED });
    }
    if (counts) capped++;
    const started = check(service).finally(() => {
      inFlight.delete(service);
      if (counts) capped--;
    });
    inFlight.set(service, started);
    return started;
  };
}
