/** The slow tier's flood: the 100,000 distinct service names the threat model promises. */

import { serviceNameFlood } from "../fixture/service_name_flood.ts";

const DISTINCT_NAMES = Number(Deno.env.get("GHP_DISTINCT_NAMES") ?? 100_000);

Deno.test({
  name: `distinct ?serviceName= values (${DISTINCT_NAMES}): bounded metric labels, memory and logs`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) => serviceNameFlood(t, DISTINCT_NAMES),
});
