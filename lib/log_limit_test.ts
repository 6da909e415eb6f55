import { assertEquals } from "../tests/assert.ts";
import { LineLimiter } from "./log_limit.ts";

/** A limiter on a fake clock whose timers run when the test moves the clock past them. */
function fakeLimiter(perWindow: number, windowMs: number) {
  let clock = 0;
  const timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
  const summaries: [string, number][] = [];
  const limiter = new LineLimiter({
    perWindow,
    windowMs,
    onSuppressed: (key, n) => summaries.push([key, n]),
    now: () => clock,
    setTimer: (fn, ms) => {
      const t = { at: clock + ms, fn, cancelled: false };
      timers.push(t);
      return () => void (t.cancelled = true);
    },
  });
  const advance = (ms: number) => {
    clock += ms;
    for (const t of timers.splice(0)) {
      if (t.cancelled) continue;
      if (t.at <= clock) t.fn();
      else timers.push(t);
    }
  };
  return { limiter, summaries, advance, pending: () => timers.filter((t) => !t.cancelled) };
}

Deno.test("LineLimiter lets perWindow lines per key through, then one summary per window", () => {
  const { limiter, summaries, advance } = fakeLimiter(3, 60_000);
  const through = Array.from({ length: 10 }, () => limiter.allow("a"));
  assertEquals(through, [true, true, true, false, false, false, false, false, false, false]);
  // Another key has its own budget.
  assertEquals(limiter.allow("b"), true);
  advance(59_999);
  assertEquals(summaries, []);
  advance(1);
  assertEquals(summaries, [["a", 7]]);
  // A new window starts with a full budget.
  assertEquals(limiter.allow("a"), true);
});

Deno.test("LineLimiter: a quiet key's window ends without a summary; close writes what is pending", () => {
  const { limiter, summaries, advance, pending } = fakeLimiter(1, 1_000);
  assertEquals([limiter.allow("a"), limiter.allow("a")], [true, false]);
  assertEquals([limiter.allow("q")], [true]);
  advance(1_000);
  assertEquals(summaries, [["a", 1]]);
  assertEquals([limiter.allow("q"), limiter.allow("a")], [true, true]);
  limiter.allow("a");
  assertEquals(pending().length, 1);
  limiter.close();
  assertEquals(pending().length, 0);
  assertEquals(summaries, [["a", 1], ["a", 1]]);
});
