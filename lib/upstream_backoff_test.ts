import { assertEquals } from "../tests/assert.ts";
import { DroppedConnectionBackoff } from "./upstream_backoff.ts";
import type { CheckResult } from "./status.ts";

const dropped: CheckResult = {
  service: "a",
  outcome: "RPC_ERROR",
  detail: "rpc error: code = Internal desc = Failed to start HTTP/2 stream",
};
const refused: CheckResult = { service: "a", outcome: "CONNECTION_FAILED", detail: "refused" };

Deno.test("a dropped connection holds new attempts for 100 ms, doubling up to the ceiling", () => {
  let clock = 0;
  const backoff = new DroppedConnectionBackoff({ now: () => clock, maxMs: 1_000 });
  assertEquals(backoff.held("a"), undefined);
  const holds: number[] = [];
  for (let i = 0; i < 6; i++) {
    backoff.record(dropped, true);
    // Held (for any service, with that service's name) until the hold ends.
    assertEquals(backoff.held("b"), { ...dropped, service: "b" });
    const start = clock;
    while (backoff.held("a")) clock += 10;
    holds.push(clock - start);
  }
  assertEquals(holds, [100, 200, 400, 800, 1_000, 1_000]);
});

Deno.test("an upstream answer ends the backoff; a refused connection neither ends nor extends it", () => {
  let clock = 0;
  const backoff = new DroppedConnectionBackoff({ now: () => clock });
  backoff.record(dropped, true);
  backoff.record(dropped, true); // 200 ms from now
  backoff.record(refused, false);
  clock += 150;
  assertEquals(backoff.held("a")?.outcome, "RPC_ERROR");
  clock += 50;
  assertEquals(backoff.held("a"), undefined);
  backoff.record(dropped, true); // the third in a row: 400 ms
  clock += 399;
  assertEquals(backoff.held("a")?.outcome, "RPC_ERROR");
  backoff.record({ service: "a", outcome: "NOT_SERVING" }, false);
  assertEquals(backoff.held("a"), undefined);
  backoff.record(dropped, true); // back to 100 ms
  clock += 100;
  assertEquals(backoff.held("a"), undefined);
});
