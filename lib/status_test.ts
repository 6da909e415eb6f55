import { assertEquals } from "../tests/assert.ts";
import { type CheckResult, type Outcome, statusTable, worstResult } from "./status.ts";

// The README's status table, written out again on purpose: the test holds the contract.
const spec: [Outcome, number, number, number][] = [
  ["SERVING", 200, 0, 0],
  ["NOT_SERVING", 503, 5, 4],
  ["UNKNOWN", 503, 5, 4],
  ["SERVICE_UNKNOWN", 404, 5, 4],
  ["NOT_FOUND", 404, 3, 3],
  ["UNIMPLEMENTED", 501, 4, 3],
  ["DEADLINE_EXCEEDED", 503, 2, 3],
  ["RPC_ERROR", 503, 5, 3],
  ["CONNECTION_FAILED", 503, 1, 2],
];

Deno.test("statusTable is the README's table", () => {
  assertEquals(Object.keys(statusTable).sort(), spec.map(([o]) => o).sort());
  for (const [outcome, http, runcli, probe] of spec) {
    const row = statusTable[outcome];
    assertEquals([row.http, row.runcli, row.probe], [http, runcli, probe], outcome);
  }
});

Deno.test("only an unreachable or silent upstream is not live", () => {
  const notLive = Object.entries(statusTable).filter(([, r]) => !r.answered).map(([o]) => o);
  assertEquals(notLive.sort(), ["CONNECTION_FAILED", "DEADLINE_EXCEEDED"]);
});

Deno.test("worstResult picks the most severe outcome, SERVING only when all are", () => {
  const r = (service: string, outcome: Outcome): CheckResult => ({ service, outcome });
  assertEquals(worstResult([r("a", "SERVING"), r("b", "SERVING")]).outcome, "SERVING");
  assertEquals(worstResult([r("a", "SERVING"), r("b", "NOT_SERVING")]).service, "b");
  assertEquals(
    worstResult([r("a", "NOT_FOUND"), r("b", "CONNECTION_FAILED"), r("c", "UNKNOWN")]).outcome,
    "CONNECTION_FAILED",
  );
  // Severities are distinct except for the two "not serving" statuses, so the order is total.
  const sev = new Set(Object.values(statusTable).map((row) => row.severity));
  assertEquals(sev.size, Object.keys(statusTable).length - 1);
  for (const [outcome] of spec) {
    if (outcome === "SERVING") continue;
    assertEquals(worstResult([r("a", "SERVING"), r("b", outcome)]).outcome, outcome);
  }
});
