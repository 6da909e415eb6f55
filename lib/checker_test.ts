import { assert, assertEquals } from "../tests/assert.ts";
import { coalescingChecker, OVERLOADED } from "./checker.ts";
import type { CheckResult } from "./status.ts";

/** A checker whose calls stay pending until released, counting calls per service. */
function gatedChecker() {
  const calls = new Map<string, number>();
  const waiting: (() => void)[] = [];
  const check = (service: string) => {
    calls.set(service, (calls.get(service) ?? 0) + 1);
    return new Promise<CheckResult>((resolve) => {
      waiting.push(() => resolve({ service, outcome: "SERVING" }));
    });
  };
  return { check, calls, release: () => waiting.splice(0).forEach((f) => f()) };
}

Deno.test("concurrent checks of one service share one call", async () => {
  const g = gatedChecker();
  const checker = coalescingChecker(g.check);
  const pending = Array.from({ length: 100 }, () => checker("svc"));
  g.release();
  const results = await Promise.all(pending);
  assertEquals(g.calls.get("svc"), 1);
  assert(results.every((r) => r.outcome === "SERVING"));
  // Once settled, the next check makes a new call: answers are never older than one call.
  const next = checker("svc");
  g.release();
  await next;
  assertEquals(g.calls.get("svc"), 2);
});

Deno.test("the cap on in-flight calls answers the excess at once", async () => {
  const g = gatedChecker();
  const checker = coalescingChecker(g.check, { maxInFlight: 2 });
  const a = checker("a");
  const b = checker("b");
  const c = await checker("c");
  assertEquals(c, { service: "c", outcome: "RPC_ERROR", detail: OVERLOADED });
  assertEquals(g.calls.get("c"), undefined);
  g.release();
  await Promise.all([a, b]);
  const again = checker("c");
  g.release();
  assertEquals((await again).outcome, "SERVING");
});

Deno.test("reserved services are never refused and do not count against the cap", async () => {
  const g = gatedChecker();
  const checker = coalescingChecker(g.check, { maxInFlight: 2, reserved: new Set(["", "a"]) });
  const flood = [checker("x1"), checker("x2")];
  assertEquals((await checker("x3")).detail, OVERLOADED);
  // The configured answers are still checked while the cap is full...
  const overall = checker("");
  const a = checker("a");
  assertEquals([g.calls.get(""), g.calls.get("a")], [1, 1]);
  // ...and take no room from other names.
  assertEquals((await checker("x4")).detail, OVERLOADED);
  g.release();
  assertEquals((await overall).outcome, "SERVING");
  assertEquals((await a).outcome, "SERVING");
  await Promise.all(flood);
  const next = checker("x5");
  g.release();
  assertEquals((await next).outcome, "SERVING");
});
