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

/**
 * Wraps `check` so that concurrent calls for the same service share one call, and at most
 * `maxInFlight` calls run at once (beyond that, the answer is an immediate RPC_ERROR).
 * The callers' abort signals are not passed on: one prober going away must not cancel the
 * check others wait for.
 */
export function coalescingChecker(check: HealthChecker, maxInFlight = 32): HealthChecker {
  const inFlight = new Map<string, Promise<CheckResult>>();
  return (service) => {
    const pending = inFlight.get(service);
    if (pending) return pending;
    if (inFlight.size >= maxInFlight) {
      return Promise.resolve({ service, outcome: "RPC_ERROR", detail: OVERLOADED });
    }
    const started = check(service).finally(() => inFlight.delete(service));
    inFlight.set(service, started);
    return started;
  };
}
