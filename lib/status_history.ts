/**
 * What the operator page (`/status` on the metrics listener) shows beyond the flags: each
 * service's current state and since when, the last state changes (a bounded ring buffer), and
 * the health answers of the last seconds. Fed from server mode's one state-change reporter and
 * its one per-answer observation, so the page, the log and the metrics agree.
 *
 * @module
 */

import type { CheckResult, Outcome } from "./status.ts";

/** How many state changes the page keeps (older ones are in the log). */
export const STATE_CHANGES_KEPT = 50;

/** Longest cause text kept per change: gRPC error details can be long. */
const MAX_DETAIL_CHARS = 500;

/** One change of a service's outcome. */
export interface StateChangeRecord {
  /** Milliseconds since the epoch. */
  readonly at: number;
  readonly service: string;
  /** The previous outcome; undefined for a service's first result. */
  readonly from?: string;
  readonly to: Outcome;
  /** The cause as the upstream or the client library gave it (may name upstream internals). */
  readonly detail?: string;
}

/** A service's current outcome, since the change that set it. */
export interface ServiceState {
  readonly service: string;
  readonly outcome: Outcome;
  /** Milliseconds since the epoch. */
  readonly since: number;
  readonly detail?: string;
}

/**
 * The current state of each service that has reported a change, and the last
 * {@link STATE_CHANGES_KEPT} changes. The reporter already bounds the services it reports
 * (configured ones, or at most 1000 on demand), so the map is bounded too.
 */
export class StateHistory {
  readonly #now: () => number;
  readonly #capacity: number;
  readonly #ring: (StateChangeRecord | undefined)[];
  #next = 0;
  readonly #current = new Map<string, ServiceState>();

  constructor(opts: { now?: () => number; capacity?: number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#capacity = opts.capacity ?? STATE_CHANGES_KEPT;
    this.#ring = new Array(this.#capacity);
  }

  /** Records that `service` went from `from` to `to`. */
  record(service: string, from: string | undefined, to: CheckResult): void {
    const at = this.#now();
    const detail = to.detail?.slice(0, MAX_DETAIL_CHARS);
    this.#ring[this.#next] = { at, service, from, to: to.outcome, detail };
    this.#next = (this.#next + 1) % this.#capacity;
    this.#current.set(service, { service, outcome: to.outcome, since: at, detail });
  }

  /** The current outcome of `service`; undefined before its first change. */
  outcome(service: string): Outcome | undefined {
    return this.#current.get(service)?.outcome;
  }

  /** The kept changes, newest first. */
  changes(): StateChangeRecord[] {
    const out: StateChangeRecord[] = [];
    for (let i = 1; i <= this.#capacity; i++) {
      const r = this.#ring[(this.#next - i + this.#capacity) % this.#capacity];
      if (r) out.push(r);
    }
    return out;
  }

  /** Each service's current state, by name. */
  services(): ServiceState[] {
    return [...this.#current.values()].sort((a, b) => a.service < b.service ? -1 : 1);
  }
}

/** The seconds of answers {@link RecentAnswers} summarises. */
export const ANSWER_WINDOW_SECONDS = 10;

/**
 * Latency buckets by powers of two microseconds (bucket i holds up to 2^i µs; the last, 2^24 µs
 * ≈ 17 s, holds everything slower), fine enough for answers from memory (tens of µs) and for
 * upstream checks alike.
 */
const LATENCY_BUCKETS = 25;

/** One second of answers. */
interface Second {
  second: number;
  count: number;
  sum: number;
  buckets: Uint32Array;
}

/** Answers of the recent window: rate, mean and percentiles (bucket upper bounds). */
export interface AnswerSummary {
  readonly windowSeconds: number;
  readonly answersPerSecond: number;
  /** Undefined when nothing was answered in the window. */
  readonly latencyMs?: { mean: number; p50: number; p99: number };
}

/**
 * Health answers of the last {@link ANSWER_WINDOW_SECONDS} complete seconds, from the durations
 * the handler already measures for the metrics. `observe` is O(1) on the answer path.
 */
export class RecentAnswers {
  readonly #now: () => number;
  readonly #started: number;
  readonly #seconds: Second[];

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#started = Math.floor(this.#now() / 1000);
    // One slot more than the window: the current, incomplete second is not summarised.
    this.#seconds = Array.from({ length: ANSWER_WINDOW_SECONDS + 1 }, () => ({
      second: -1,
      count: 0,
      sum: 0,
      buckets: new Uint32Array(LATENCY_BUCKETS),
    }));
  }

  /** Counts one answer that took `seconds`. */
  observe(seconds: number): void {
    const now = Math.floor(this.#now() / 1000);
    const slot = this.#seconds[now % this.#seconds.length];
    if (slot.second !== now) {
      slot.second = now;
      slot.count = 0;
      slot.sum = 0;
      slot.buckets.fill(0);
    }
    slot.count++;
    slot.sum += seconds;
    const micros = seconds * 1e6;
    const i = micros <= 1 ? 0 : Math.ceil(Math.log2(micros));
    slot.buckets[i < LATENCY_BUCKETS ? i : LATENCY_BUCKETS - 1]++;
  }

  /** Rate and latency over the complete seconds of the window (fewer just after start). */
  summary(): AnswerSummary {
    const now = Math.floor(this.#now() / 1000);
    const windowSeconds = Math.max(1, Math.min(ANSWER_WINDOW_SECONDS, now - this.#started));
    let count = 0;
    let sum = 0;
    const buckets = new Array<number>(LATENCY_BUCKETS).fill(0);
    for (const s of this.#seconds) {
      if (s.second >= now || s.second < now - windowSeconds) continue;
      count += s.count;
      sum += s.sum;
      for (let i = 0; i < LATENCY_BUCKETS; i++) buckets[i] += s.buckets[i];
    }
    const answersPerSecond = count / windowSeconds;
    if (count === 0) return { windowSeconds, answersPerSecond };
    const quantile = (q: number) => {
      let seen = 0;
      for (let i = 0; i < LATENCY_BUCKETS; i++) {
        seen += buckets[i];
        if (seen >= q * count) return 2 ** i / 1000;
      }
      return 2 ** (LATENCY_BUCKETS - 1) / 1000;
    };
    return {
      windowSeconds,
      answersPerSecond,
      latencyMs: { mean: (sum / count) * 1000, p50: quantile(0.5), p99: quantile(0.99) },
    };
  }
}
