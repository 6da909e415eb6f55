import { assertEquals, assertEventually } from "../tests/assert.ts";
import { BackgroundChecker, STALE, type WatchableUpstream } from "./background.ts";
import type { CheckResult, Outcome } from "./status.ts";

/** An upstream whose answers the test scripts; `hold` makes checks hang (a stuck loop). */
function scripted(outcomes: Outcome[]) {
  let hold = false;
  const upstream: WatchableUpstream = {
    check: (service) =>
      hold ? new Promise<CheckResult>(() => {}) : Promise.resolve({
        service,
        outcome: outcomes.shift() ?? "SERVING",
      }),
    watch: () => () => {},
  };
  return { upstream, holdChecks: () => (hold = true) };
}

Deno.test("a SERVING state older than the staleness bound is never served", async () => {
  let now = 0;
  const s = scripted(["SERVING"]);
  const bg = new BackgroundChecker(s.upstream, {
    services: ["svc"],
    intervalMs: 1000,
    healthyThreshold: 1,
    unhealthyThreshold: 2,
    watch: false,
    checkTimeoutMs: 500,
    now: () => now,
  });
  await bg.start();
  // From here on the loop is stuck: no result ever arrives again.
  s.holdChecks();
  bg.stop();
  assertEquals(bg.stalenessBoundMs, 3 * 1000 + 500);
  now = 3500;
  assertEquals(bg.current("svc").outcome, "SERVING");
  now = 3501;
  assertEquals(bg.current("svc"), { ...STALE, service: "svc" });
  assertEquals(bg.current("other"), { ...STALE, service: "other" });
});

Deno.test("thresholds: the served state flips after N consecutive disagreeing results", async () => {
  const changes: string[] = [];
  const results: Outcome[] = ["SERVING", "NOT_SERVING", "SERVING", "NOT_SERVING", "NOT_SERVING"];
  const s = scripted([...results]);
  const bg = new BackgroundChecker(s.upstream, {
    services: ["svc"],
    intervalMs: 1,
    healthyThreshold: 3,
    unhealthyThreshold: 2,
    watch: false,
    checkTimeoutMs: 100,
    jitter: 0,
    onStateChange: (_s, from, to) => changes.push(`${from}->${to.outcome}`),
  });
  await bg.start();
  // Let the scripted results and then three SERVING ones play out.
  await assertEventually(() => changes.length >= 3, "three state changes");
  bg.stop();
  assertEquals(changes, [
    "undefined->SERVING",
    "SERVING->NOT_SERVING", // only after two NOT_SERVING in a row
    "NOT_SERVING->SERVING", // only after three SERVING in a row
  ]);
});
