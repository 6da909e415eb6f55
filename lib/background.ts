/**
 * Background checking (`-check-interval`, `-watch`): each configured service is checked on a
 * schedule (or watched over `Health/Watch`), and HTTP answers come from memory. Envoy-style
 * thresholds (`-healthy-threshold`, `-unhealthy-threshold`) decide when the served state flips,
 * and a SERVING state whose last SERVING result is older than the staleness bound is never
 * served.
 *
 * @module
 */

import type { CheckResult, Outcome } from "./status.ts";

/** What the background checker needs from the upstream (an `UpstreamHealth`). */
export interface WatchableUpstream {
  check(service: string): Promise<CheckResult>;
  watch(
    service: string,
    onStatus: (result: CheckResult) => void,
    onEnd: (result: CheckResult) => void,
  ): () => void;
}

/** Options for {@link BackgroundChecker}. */
export interface BackgroundOptions {
  services: readonly string[];
  /** Polling interval; with `watch`, used only after falling back to polling (default 1 s). */
  intervalMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  watch: boolean;
  /** The longest one check can take (connect + RPC timeouts), for the staleness bound. */
  checkTimeoutMs: number;
  /** Called once per change of a service's served outcome. */
  onStateChange?: (service: string, from: Outcome | undefined, to: CheckResult) => void;
  /** Called when Watch is not implemented upstream and polling takes over. */
  onWatchFallback?: (service: string) => void;
  /** Fraction of the interval used as random jitter (default 0.1). */
  jitter?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** The outcome served when no result is fresh enough. */
export const STALE: CheckResult = {
  service: "",
  outcome: "DEADLINE_EXCEEDED",
  detail: "no fresh health result (staleness bound exceeded)",
};

interface ServiceState {
  /** The outcome served (after thresholds). */
  served?: CheckResult;
  /** When the last SERVING result arrived. */
  lastServingAt: number;
  /** Consecutive results that disagree with the served state. */
  streak: number;
  /** A watch stream is open and has delivered at least one status. */
  watching: boolean;
  timer?: ReturnType<typeof setTimeout>;
  cancelWatch?: () => void;
}

/** Keeps each configured service's health in memory, updated in the background. */
export class BackgroundChecker {
  readonly #opts: BackgroundOptions;
  readonly #upstream: WatchableUpstream;
  readonly #states = new Map<string, ServiceState>();
  readonly #now: () => number;
  #stopped = false;

  constructor(upstream: WatchableUpstream, opts: BackgroundOptions) {
    this.#upstream = upstream;
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
    for (const s of opts.services) {
      this.#states.set(s, { lastServingAt: -Infinity, streak: 0, watching: false });
    }
  }

  /**
   * How old the last SERVING result may be while SERVING is still served: enough for the
   * unhealthy threshold to act first, plus one interval and one check of slack.
   */
  get stalenessBoundMs(): number {
    const interval = this.#pollIntervalMs();
    return (this.#opts.unhealthyThreshold + 1) * interval + this.#opts.checkTimeoutMs;
  }

  /** Whether `service` is one of the services checked in the background. */
  has(service: string): boolean {
    return this.#states.has(service);
  }

  /** Starts checking every service; returns once each has a first result. */
  async start(): Promise<void> {
    await Promise.all([...this.#states.keys()].map((s) => this.#begin(s)));
  }

  /** Stops all timers and streams. */
  stop(): void {
    this.#stopped = true;
    for (const st of this.#states.values()) {
      clearTimeout(st.timer);
      st.cancelWatch?.();
    }
  }

  /**
   * The answer for `service` from memory. SERVING is served only while a SERVING result is
   * fresh (or a watch stream that said SERVING is still open).
   */
  current(service: string): CheckResult {
    const st = this.#states.get(service);
    if (!st?.served) return { ...STALE, service };
    if (st.served.outcome !== "SERVING" || st.watching) return st.served;
    const age = this.#now() - st.lastServingAt;
    return age > this.stalenessBoundMs ? { ...STALE, service } : st.served;
  }

  #pollIntervalMs(): number {
    return this.#opts.intervalMs > 0 ? this.#opts.intervalMs : 1000;
  }

  async #begin(service: string): Promise<void> {
    if (this.#opts.watch) {
      await this.#openWatch(service);
    } else {
      await this.#poll(service);
    }
  }

  /** Records one result and applies the thresholds. */
  #record(service: string, result: CheckResult): void {
    const st = this.#states.get(service)!;
    const healthy = result.outcome === "SERVING";
    if (healthy) st.lastServingAt = this.#now();
    const before = st.served;
    if (before === undefined) {
      // The first result is taken as is: there is no state to protect yet.
      st.served = result;
    } else if ((before.outcome === "SERVING") === healthy) {
      st.streak = 0;
      st.served = result; // same side: keep the freshest details (e.g. NOT_SERVING -> CONNECTION_FAILED)
    } else {
      st.streak++;
      const needed = healthy ? this.#opts.healthyThreshold : this.#opts.unhealthyThreshold;
      if (st.streak >= needed) {
        st.streak = 0;
        st.served = result;
      }
    }
    const after = st.served;
    if (after && after.outcome !== before?.outcome) {
      this.#opts.onStateChange?.(service, before?.outcome, after);
    }
  }

  #delay(): number {
    const interval = this.#pollIntervalMs();
    const jitter = (this.#opts.jitter ?? 0.1) * interval;
    return interval - jitter / 2 + Math.random() * jitter;
  }

  /** One poll now, then one per interval (never overlapping). */
  async #poll(service: string): Promise<void> {
    if (this.#stopped) return;
    const st = this.#states.get(service)!;
    this.#record(service, await this.#upstream.check(service));
    if (this.#stopped) return;
    st.timer = setTimeout(() => void this.#poll(service), this.#delay());
  }

  /** Opens a Watch stream; resolves at its first status or end. */
  #openWatch(service: string): Promise<void> {
    const st = this.#states.get(service)!;
    return new Promise((resolve) => {
      st.cancelWatch = this.#upstream.watch(
        service,
        (result) => {
          st.watching = true;
          this.#record(service, result);
          resolve();
        },
        (end) => {
          st.watching = false;
          st.cancelWatch = undefined;
          if (this.#stopped) return resolve();
          if (end.outcome === "UNIMPLEMENTED") {
            // The upstream has no Watch: poll instead, for good.
            this.#opts.onWatchFallback?.(service);
            resolve(this.#poll(service));
            return;
          }
          this.#record(service, end);
          resolve();
          // A broken stream is re-opened after a short pause (the channel reconnects itself).
          st.timer = setTimeout(() => void this.#openWatch(service), 200);
        },
      );
    });
  }
}
