/**
 * Backing off from an upstream that drops the connections it accepts (GOAWAY at once, or a
 * session that dies before its first stream), so that such an upstream costs a bounded number
 * of connections however hard the proxy is probed.
 *
 * Why it matters: Deno 2.9.3's `node:http2` (which grpc-js runs on) never frees a session: the
 * native session keeps a global handle on its JS object after `close()` and `destroy()`, so
 * every `ClientHttp2Session`, its socket and grpc-js's transport stay, about 23 KB each
 * (measured; docs/faults.md). Fixed in Deno 2.9.4 by denoland/deno#36043, but 2.9.4-2.9.6 abort
 * on GOAWAY (denoland/deno#36788), so the pin stays. A healthy upstream costs one connection for
 * hours; one that drops every connection used to cost one per check (70 -> 283 MB in 20 s under
 * load). grpc-js backs off only from connections that fail to open, not from ones that open and
 * are dropped. Once the pin moves past both, the backoff can stay (Go's gRPC backs off too) or
 * its ceiling can come down.
 *
 * @module
 */

import type { CheckResult } from "./status.ts";

/** Options of {@link DroppedConnectionBackoff}. */
export interface BackoffOptions {
  /** The first hold after a dropped connection (100 ms); it doubles with each one after. */
  initialMs?: number;
  /** The longest hold (30 s): how late recovery of an upstream that dropped for long is seen. */
  maxMs?: number;
  /** Monotonic clock in milliseconds (for tests). */
  now?: () => number;
}

/**
 * After a check ends on a dropped connection, no new attempt is made for a hold that doubles
 * with each consecutive drop (100 ms, 200 ms, ... 30 s); checks in the meantime answer the same
 * failure at once. Any answer from the upstream ends the backoff; a refused connection (which
 * costs nothing, and which grpc-js backs off from itself) neither extends nor ends it.
 */
export class DroppedConnectionBackoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #now: () => number;
  #drops = 0;
  #until = -Infinity;
  #last: CheckResult | undefined;

  constructor(opts: BackoffOptions = {}) {
    this.#initialMs = opts.initialMs ?? 100;
    this.#maxMs = opts.maxMs ?? 30_000;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** The failure to answer for `service` instead of a new attempt, while holding. */
  held(service: string): CheckResult | undefined {
    if (!this.#last || this.#now() >= this.#until) return undefined;
    return { ...this.#last, service };
  }

  /** Records how an attempt ended; `dropped` when the connection was dropped under it. */
  record(result: CheckResult, dropped: boolean): void {
    if (dropped) {
      this.#drops++;
      const holdMs = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#drops - 1, 30));
      this.#until = this.#now() + holdMs;
      this.#last = result;
    } else if (result.outcome !== "CONNECTION_FAILED") {
      this.#drops = 0;
      this.#last = undefined;
    }
  }
}
