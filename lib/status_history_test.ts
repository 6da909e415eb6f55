import { assertEquals } from "../tests/assert.ts";
import { ANSWER_WINDOW_SECONDS, RecentAnswers, StateHistory } from "./status_history.ts";

Deno.test("the history keeps the last changes, newest first, and each service's since", () => {
  let now = 1_000;
  const history = new StateHistory({ now: () => now, capacity: 3 });
  history.record("a", undefined, { service: "a", outcome: "SERVING" });
  now = 2_000;
  history.record("b", undefined, { service: "b", outcome: "SERVING" });
  now = 3_000;
  history.record("a", "SERVING", { service: "a", outcome: "NOT_SERVING", detail: "drained" });
  now = 4_000;
  history.record("a", "NOT_SERVING", { service: "a", outcome: "SERVING" });
  // Capacity 3: the first change fell out; the newest comes first.
  assertEquals(history.changes().map((c) => [c.at, c.service, c.from, c.to, c.detail]), [
    [4_000, "a", "NOT_SERVING", "SERVING", undefined],
    [3_000, "a", "SERVING", "NOT_SERVING", "drained"],
    [2_000, "b", undefined, "SERVING", undefined],
  ]);
  assertEquals(history.services().map((s) => [s.service, s.outcome, s.since]), [
    ["a", "SERVING", 4_000],
    ["b", "SERVING", 2_000],
  ]);
});

Deno.test("the history caps a long cause", () => {
  const history = new StateHistory();
  history.record("a", undefined, { service: "a", outcome: "RPC_ERROR", detail: "x".repeat(5000) });
  assertEquals(history.changes()[0].detail?.length, 500);
});

Deno.test("recent answers: rate and latency over the complete seconds of the window", () => {
  let now = 100_000;
  const answers = new RecentAnswers({ now: () => now });
  assertEquals(answers.summary(), { windowSeconds: 1, answersPerSecond: 0 });
  now += 1_000; // second 101: 99 answers of 100 µs and one of 10 ms
  for (let i = 0; i < 99; i++) answers.observe(0.0001);
  answers.observe(0.01);
  now += 1_000; // second 102: not complete, not summarised
  answers.observe(1);
  const s = answers.summary();
  assertEquals([s.windowSeconds, s.answersPerSecond], [2, 50]);
  // Bucket upper bounds: 100 µs is in (64, 128] µs, 10 ms in (8.192, 16.384] ms.
  assertEquals(s.latencyMs?.p50, 0.128);
  assertEquals(s.latencyMs?.p99, 0.128);
  assertEquals(Math.round(s.latencyMs!.mean * 1000), 199); // (99 * 0.1 + 10) / 100 ms, in µs
});

Deno.test("recent answers forget seconds older than the window", () => {
  let now = 0;
  const answers = new RecentAnswers({ now: () => now });
  now = 5_000;
  answers.observe(0.001);
  now = 6_000;
  assertEquals(answers.summary().answersPerSecond, 1 / 6); // 6 complete seconds since start
  now = (6 + ANSWER_WINDOW_SECONDS) * 1000;
  assertEquals(answers.summary(), { windowSeconds: ANSWER_WINDOW_SECONDS, answersPerSecond: 0 });
  // Second 16 reuses the slot of second 5 (11 slots): the old count is gone.
  now = 16_500;
  answers.observe(0.002);
  now = 17_000;
  assertEquals(answers.summary().answersPerSecond, 1 / ANSWER_WINDOW_SECONDS);
});
