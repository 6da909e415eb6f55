/**
 * Go `time.Duration` syntax, so flag values such as `-connect-timeout=1.5s` and the durations in
 * messages (`within 1s`, `(specified: 0s)`) read exactly as in grpc-health-probe and
 * grpc_health_proxy. The parser and the formatter follow Go's `time.ParseDuration` and
 * `Duration.String`, working in integer nanoseconds (as Go does) so rounding matches.
 *
 * @module
 */

const NANOSECOND = 1n;
const MICROSECOND = 1000n * NANOSECOND;
const MILLISECOND = 1000n * MICROSECOND;
const SECOND = 1000n * MILLISECOND;
const MINUTE = 60n * SECOND;
const HOUR = 60n * MINUTE;

/** 1<<63: one past the largest int64; Go rejects anything beyond int64 nanoseconds. */
const INT64_LIMIT = 1n << 63n;

/** The units Go accepts, both micro signs included (U+00B5 and U+03BC). */
const UNITS: ReadonlyMap<string, bigint> = new Map([
  ["ns", NANOSECOND],
  ["us", MICROSECOND],
  ["\u00b5s", MICROSECOND],
  ["\u03bcs", MICROSECOND],
  ["ms", MILLISECOND],
  ["s", SECOND],
  ["m", MINUTE],
  ["h", HOUR],
]);

const EXAMPLES = 'e.g. "1s", "300ms", "1.5s", "1m30s"';

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * Parses a Go duration (`300ms`, `-1.5h`, `1h2m3s4ms5us6ns`, `0`) into integer nanoseconds.
 *
 * Grammar: an optional sign, then one or more `<decimal number with optional fraction><unit>`
 * with units `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`. A bare `0` (with an optional sign) is
 * the only number allowed without a unit. Values outside int64 nanoseconds are rejected.
 *
 * @throws {RangeError} on bad syntax, an unknown or missing unit, or overflow; the message
 *   quotes the input and says what is wrong.
 */
export function parseGoDurationNs(s: string): bigint {
  const orig = s;
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  // Special case, as in Go: a unitless zero is fine.
  if (s === "0") return 0n;
  if (s === "") throw new RangeError(`invalid duration ${quote(orig)} (${EXAMPLES})`);
  let d = 0n;
  while (s !== "") {
    if (!(s[0] === "." || isDigit(s[0]))) {
      throw new RangeError(`invalid duration ${quote(orig)} (${EXAMPLES})`);
    }
    // Integer part.
    let i = 0;
    let v = 0n;
    while (isDigit(s[i])) {
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > INT64_LIMIT) throw new RangeError(`duration ${quote(orig)} is out of range`);
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);
    // Fraction: Go keeps at most int64 worth of digits and scales by float64, as here.
    let post = false;
    let f = 0n;
    let scale = 1;
    if (s[0] === ".") {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (isDigit(s[j])) {
        if (!overflow) {
          const next = f * 10n + BigInt(s.charCodeAt(j) - 48);
          if (next > INT64_LIMIT) {
            overflow = true; // Ignore further digits, as Go does.
          } else {
            f = next;
            scale *= 10;
          }
        }
        j++;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) throw new RangeError(`invalid duration ${quote(orig)} (${EXAMPLES})`);
    // Unit: everything up to the next digit or dot.
    let k = 0;
    while (k < s.length && s[k] !== "." && !isDigit(s[k])) k++;
    if (k === 0) {
      throw new RangeError(
        `missing unit in duration ${quote(orig)}: add one of ns, us, ms, s, m, h (${EXAMPLES})`,
      );
    }
    const u = s.slice(0, k);
    s = s.slice(k);
    const unit = UNITS.get(u);
    if (unit === undefined) {
      throw new RangeError(
        `unknown unit ${quote(u)} in duration ${quote(orig)}: use ns, us, ms, s, m or h`,
      );
    }
    if (v > INT64_LIMIT / unit) throw new RangeError(`duration ${quote(orig)} is out of range`);
    v *= unit;
    if (f > 0n) {
      // float64 arithmetic on purpose: it is what Go does, so results match to the nanosecond.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > INT64_LIMIT) throw new RangeError(`duration ${quote(orig)} is out of range`);
    }
    d += v;
    if (d > INT64_LIMIT) throw new RangeError(`duration ${quote(orig)} is out of range`);
  }
  if (neg) return -d;
  if (d > INT64_LIMIT - 1n) throw new RangeError(`duration ${quote(orig)} is out of range`);
  return d;
}

/**
 * Parses a Go duration (see {@link parseGoDurationNs}) into milliseconds, fractional when the
 * input has sub-millisecond precision (`1500us` gives 1.5).
 *
 * @throws {RangeError} on bad syntax, with a message that quotes the input and says how to fix it.
 */
export function parseGoDuration(s: string): number {
  return Number(parseGoDurationNs(s)) / 1e6;
}

/** Writes `v` (< 10^prec·10^k) as a decimal fraction with `prec` digits, trailing zeros dropped. */
function fmtFrac(v: bigint, prec: number): [string, bigint] {
  let digits = "";
  let print = false;
  for (let i = 0; i < prec; i++) {
    const digit = v % 10n;
    print = print || digit !== 0n;
    if (print) digits = digit.toString() + digits;
    v /= 10n;
  }
  return [print ? "." + digits : "", v];
}

/**
 * Formats integer nanoseconds as Go's `Duration.String` does: `0s`, `1ns`, `1.1µs`, `2.2ms`,
 * `3.3s`, `4m5s`, `1h0m0s`, `-2562047h47m16.854775808s`.
 */
export function formatGoDurationNs(ns: bigint): string {
  if (ns === 0n) return "0s";
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < SECOND) {
    // Sub-second: one unit with a fraction, as Go does.
    let prec: number;
    let unit: string;
    if (u < MICROSECOND) {
      return (neg ? "-" : "") + u.toString() + "ns";
    } else if (u < MILLISECOND) {
      prec = 3;
      unit = "\u00b5s";
    } else {
      prec = 6;
      unit = "ms";
    }
    const [frac, whole] = fmtFrac(u, prec);
    out = whole.toString() + frac + unit;
  } else {
    const [frac, secs] = fmtFrac(u, 9);
    u = secs;
    out = (u % 60n).toString() + frac + "s";
    u /= 60n;
    if (u > 0n) {
      out = (u % 60n).toString() + "m" + out;
      u /= 60n;
      if (u > 0n) out = u.toString() + "h" + out;
    }
  }
  return (neg ? "-" : "") + out;
}

/**
 * Formats milliseconds as a Go duration: 1000 gives `1s`, 300 gives `300ms`, 90000 gives
 * `1m30s`, 3600000 gives `1h0m0s` (Go's spelling). Sub-millisecond parts are kept to the
 * nanosecond; non-finite input gives its JavaScript spelling rather than throwing.
 */
export function formatGoDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  return formatGoDurationNs(BigInt(Math.round(ms * 1e6)));
}
