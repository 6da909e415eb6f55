/**
 * Checks as the server mode makes them: concurrent checks of one service share one in-flight
 * RPC, and checks of services nobody configured are capped (in flight at once) and rate-limited
 * (started per second), so that requests naming many services cost the upstream and the log a
 * bounded amount and never starve the configured services.
 *
 * @module
 */

import type { CheckResult, HealthChecker } from "./status.ts";
import type { HealthLister, ListResult } from "./list.ts";

/** Detail of the result given when the cap on in-flight upstream checks is reached. */
export const OVERLOADED = "too many concurrent upstream checks";

/** Detail of the result given when unconfigured services are checked faster than the limit. */
export const RATE_LIMITED = "too many checks of unconfigured services per second";

/**
 * Whether `result` is a refusal by {@link coalescingChecker} rather than an upstream answer: it
 * says nothing about the service, so it must not count as a state change.
 */
export function isRefusal(result: CheckResult): boolean {
  return result.outcome === "RPC_ERROR" &&
    (result.detail === OVERLOADED || result.detail === RATE_LIMITED);
}

/** Options of {@link coalescingChecker}. */
export interface CoalescingOptions {
  /** The most distinct checks of services outside {@link reserved} in flight at once (32). */
  maxInFlight?: number;
  /**
   * Services that never count against the cap and are never refused: the configured ones,
   * which load balancers probe. A flood of names nobody configured must not starve them.
   */
  reserved?: ReadonlySet<string>;
  /**
   * The most new checks of services outside {@link reserved} started per second, on average
   * (100); up to this many may start at once after a quiet second. Checks that join one already
   * in flight are free.
   */
  perSecond?: number;
  /** Monotonic clock in milliseconds (for tests). */
  now?: () => number;
}

/**
 * Wraps `check` so that concurrent calls for the same service share one call, and calls for
 * services outside `reserved` are limited: at most `maxInFlight` at once and `perSecond` started
 * per second (beyond either, the answer is an immediate RPC_ERROR that {@link isRefusal} tells
 * apart). The callers' abort signals are not passed on: one prober going away must not cancel
 * the check others wait for.
 */
export function coalescingChecker(
  check: HealthChecker,
  opts: CoalescingOptions = {},
): HealthChecker {
  const maxInFlight = opts.maxInFlight ?? 32;
  const reserved = opts.reserved ?? new Set<string>();
  const perSecond = opts.perSecond ?? 100;
  const now = opts.now ?? (() => performance.now());
  const inFlight = new Map<string, Promise<CheckResult>>();
  let capped = 0; // in flight and not reserved
  // Token bucket: full (perSecond tokens) after a quiet second, refilled continuously.
  let tokens = perSecond;
  let refilledAt = now();
  const takeToken = () => {
    if (perSecond === Infinity) return true;
    const t = now();
    tokens = Math.min(perSecond, tokens + (t - refilledAt) * perSecond / 1000);
    refilledAt = t;
    if (tokens < 1) return false;
    tokens--;
    return true;
  };
  return (service) => {
    const pending = inFlight.get(service);
    if (pending) return pending;
    const counts = !reserved.has(service);
    if (counts && capped >= maxInFlight) {
      return Promise.resolve({ service, outcome: "RPC_ERROR", detail: OVERLOADED });
    }
    if (counts && !takeToken()) {
      return Promise.resolve({ service, outcome: "RPC_ERROR", detail: RATE_LIMITED });
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

/**
 * Wraps `list` so that at most one `Health/List` call is in flight: callers that arrive while
 * one is out share its answer, so a flood of list requests costs the upstream one call at a
 * time. As with checks, callers' abort signals are not passed on.
 */
export function coalescingLister(list: HealthLister): HealthLister {
  let pending: Promise<ListResult> | undefined;
  return () =>
    pending ??= list().finally(() => {
      pending = undefined;
    });
}
