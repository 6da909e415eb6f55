/**
 * Bounds how many log lines one key (a service, a peer) can produce: what a flapping upstream
 * or a hostile client does must not decide the log volume, yet the operator must learn that
 * lines were left out and how many.
 *
 * @module
 */

/** Options of {@link LineLimiter}. */
export interface LineLimiterOptions {
  /** Lines let through per key and window. */
  perWindow: number;
  /** The window, in milliseconds, counted from a key's first line. */
  windowMs: number;
  /** Called once when a window in which lines were left out ends (log a summary there). */
  onSuppressed: (key: string, suppressed: number) => void;
  /** Monotonic clock in milliseconds (for tests). */
  now?: () => number;
  /** Runs `fn` after `ms`; returns a canceller (for tests). Real timers do not hold the process. */
  setTimer?: (fn: () => void, ms: number) => () => void;
}

interface Window {
  start: number;
  lines: number;
  suppressed: number;
  cancel?: () => void;
}

function realTimer(fn: () => void, ms: number): () => void {
  const id = setTimeout(fn, ms);
  Deno.unrefTimer(id);
  return () => clearTimeout(id);
}

/** Lets `perWindow` lines per key through in each window, and reports the rest once. */
export class LineLimiter {
  readonly #opts: Required<LineLimiterOptions>;
  readonly #windows = new Map<string, Window>();

  constructor(opts: LineLimiterOptions) {
    this.#opts = {
      ...opts,
      now: opts.now ?? (() => performance.now()),
      setTimer: opts.setTimer ?? realTimer,
    };
  }

  /** Whether a line for `key` may be written now; counts it either way. */
  allow(key: string): boolean {
    const now = this.#opts.now();
    let w = this.#windows.get(key);
    if (!w || (now - w.start >= this.#opts.windowMs && !w.suppressed)) {
      if (this.#windows.size >= 4096) this.#sweep(now);
      w = { start: now, lines: 0, suppressed: 0 };
      this.#windows.set(key, w);
    }
    if (++w.lines <= this.#opts.perWindow) return true;
    if (++w.suppressed === 1) {
      const window = w;
      w.cancel = this.#opts.setTimer(() => {
        this.#windows.delete(key);
        this.#opts.onSuppressed(key, window.suppressed);
      }, Math.max(0, w.start + this.#opts.windowMs - now));
    }
    return false;
  }

  /** Writes the pending summaries now and stops their timers (at shutdown). */
  close(): void {
    for (const [key, w] of this.#windows) {
      w.cancel?.();
      if (w.suppressed) this.#opts.onSuppressed(key, w.suppressed);
    }
    this.#windows.clear();
  }

  /** Forgets windows that have ended with nothing left out. */
  #sweep(now: number): void {
    for (const [key, w] of this.#windows) {
      if (!w.suppressed && now - w.start >= this.#opts.windowMs) this.#windows.delete(key);
    }
  }
}
