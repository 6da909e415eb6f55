import { assertEquals } from "../tests/assert.ts";
import { dialTarget, outcomeOfStatus } from "./upstream_options.ts";

Deno.test("dialTarget dials localhost for :port, as grpc-health-probe does", () => {
  assertEquals(dialTarget(":50051"), "localhost:50051");
  assertEquals(dialTarget("10.0.0.1:50051"), "10.0.0.1:50051");
});

Deno.test("outcomeOfStatus: numbers the proto does not define are UNKNOWN", () => {
  assertEquals([0, 1, 2, 3].map(outcomeOfStatus), [
    "UNKNOWN",
    "SERVING",
    "NOT_SERVING",
    "SERVICE_UNKNOWN",
  ]);
  assertEquals(outcomeOfStatus(42), "UNKNOWN");
  assertEquals(outcomeOfStatus(-1), "UNKNOWN");
});
