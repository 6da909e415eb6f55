import { assert, assertEquals } from "../tests/assert.ts";
import {
  coalescingChecker,
  coalescingLister,
  isRefusal,
  OVERLOADED,
  RATE_LIMITED,
} from "./checker.ts";
import type { ListResult } from "./list.ts";
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

Deno.test("unconfigured services start at most perSecond checks per second; reserved ones are free", async () => {
  const g = gatedChecker();
  let clock = 0;
  const checker = coalescingChecker(g.check, {
    perSecond: 4,
    reserved: new Set([""]),
    now: () => clock,
  });
  const settle = async (names: string[]) => {
    const pending = names.map((n) => checker(n));
    g.release();
    return (await Promise.all(pending)).map((r) => r.detail ?? r.outcome);
  };
  // A burst of up to perSecond after a quiet second, then refused until tokens come back.
  assertEquals(await settle(["a", "b", "c", "d", "e"]), [
    "SERVING",
    "SERVING",
    "SERVING",
    "SERVING",
    RATE_LIMITED,
  ]);
  assertEquals(g.calls.get("e"), undefined);
  // The configured answer is never limited.
  assertEquals(await settle(["", "", ""]), ["SERVING", "SERVING", "SERVING"]);
  clock += 250; // one token back
  assertEquals(await settle(["f", "g"]), ["SERVING", RATE_LIMITED]);
  // A check that joins one in flight costs nothing.
  clock += 250;
  const first = checker("h");
  const joined = checker("h");
  assertEquals(await settle(["i"]), [RATE_LIMITED]);
  g.release();
  assertEquals([(await first).outcome, (await joined).outcome], ["SERVING", "SERVING"]);
  assertEquals(g.calls.get("h"), 1);
  // The bucket never holds more than perSecond, however long the quiet.
  clock += 60_000;
  const burst = await settle(["j", "k", "l", "m", "n", "o"]);
  assertEquals(burst.filter((r) => r === RATE_LIMITED).length, 2);
});

Deno.test("isRefusal tells the checker's refusals from upstream answers", () => {
  assert(isRefusal({ service: "x", outcome: "RPC_ERROR", detail: OVERLOADED }));
  assert(isRefusal({ service: "x", outcome: "RPC_ERROR", detail: RATE_LIMITED }));
  assert(!isRefusal({ service: "x", outcome: "RPC_ERROR", detail: "code = Internal" }));
  assert(!isRefusal({ service: "x", outcome: "SERVING" }));
});

Deno.test("concurrent List calls share one call; the next caller after it makes a new one", async () => {
  let calls = 0;
  const waiting: (() => void)[] = [];
  const lister = coalescingLister(() => {
    calls++;
    return new Promise<ListResult>((resolve) => waiting.push(() => resolve({ results: [] })));
  });
  const pending = Array.from({ length: 50 }, () => lister());
  assertEquals(calls, 1);
  waiting.splice(0).forEach((f) => f());
  const answers = await Promise.all(pending);
  assert(answers.every((a) => a === answers[0]));
  const next = lister();
  assertEquals(calls, 2);
  waiting.splice(0).forEach((f) => f());
  await next;
});
