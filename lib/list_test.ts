import { assert, assertEquals } from "../tests/assert.ts";
import {
  listBody,
  listedName,
  listedResults,
  listHttpStatus,
  listOutcome,
  type ListResult,
  MAX_LISTED,
} from "./list.ts";
import { type Outcome, statusTable } from "./status.ts";

const SECRET = "dial tcp 10.1.2.3:50051: connection refused";

/** A successful List answer from `[service, outcome]` pairs. */
function listed(...entries: [string, Outcome][]): ListResult {
  return { results: entries.map(([service, outcome]) => ({ service, outcome })) };
}

Deno.test("listed results: statuses by number, sorted by name, undefined numbers UNKNOWN", () => {
  assertEquals(listedResults([["b", 2], ["", 1], ["a", 3], ["B", 0], ["c", 42]]), [
    { service: "", outcome: "SERVING" },
    { service: "B", outcome: "UNKNOWN" },
    { service: "a", outcome: "SERVICE_UNKNOWN" },
    { service: "b", outcome: "NOT_SERVING" },
    { service: "c", outcome: "UNKNOWN" },
  ]);
});

Deno.test("the list's outcome and HTTP status: 200 only when every listed service is SERVING", () => {
  const cases: [ListResult, Outcome, number][] = [
    [listed(["a", "SERVING"], ["b", "SERVING"]), "SERVING", 200],
    [listed(["a", "SERVING"], ["b", "NOT_SERVING"]), "NOT_SERVING", 503],
    [listed(["a", "UNKNOWN"], ["b", "SERVING"]), "UNKNOWN", 503],
    // A listed SERVICE_UNKNOWN is an unhealthy entry, not a missing page: 503, not 404.
    [listed(["a", "SERVICE_UNKNOWN"], ["b", "SERVING"]), "SERVICE_UNKNOWN", 503],
    [listed(["a", "SERVICE_UNKNOWN"], ["b", "NOT_SERVING"]), "NOT_SERVING", 503],
    // Nothing said SERVING.
    [listed(), "UNKNOWN", 503],
  ];
  for (const [r, outcome, http] of cases) {
    assertEquals([listOutcome(r), listHttpStatus(r)], [outcome, http], JSON.stringify(r));
  }
  // A failed call: the status table's row, whatever it is.
  for (const outcome of Object.keys(statusTable) as Outcome[]) {
    const r: ListResult = { failure: { service: "", outcome, detail: SECRET } };
    assertEquals([listOutcome(r), listHttpStatus(r)], [outcome, statusTable[outcome].http]);
  }
});

Deno.test("list bodies: text lines and JSON of the multi-service shape", () => {
  const r = listed(["", "SERVING"], ["a.v1.A", "SERVING"], ["b.v1.B", "NOT_SERVING"]);
  assertEquals(listBody(r, false), '"" SERVING\na.v1.A SERVING\nb.v1.B NOT_SERVING\n');
  assertEquals(JSON.parse(listBody(r, true)), {
    status: "NOT_SERVING",
    services: [
      { service: "", status: "SERVING" },
      { service: "a.v1.A", status: "SERVING" },
      { service: "b.v1.B", status: "NOT_SERVING", reason: "upstream reports NOT_SERVING" },
    ],
  });
});

Deno.test("list bodies without entries say why, from fixed text only", () => {
  const none = listed();
  assertEquals(listBody(none, false), "upstream lists no services (UNKNOWN)\n");
  assertEquals(JSON.parse(listBody(none, true)), {
    status: "UNKNOWN",
    reason: "upstream lists no services",
    services: [],
  });
  const unimplemented: ListResult = {
    failure: { service: "", outcome: "UNIMPLEMENTED", detail: SECRET },
  };
  assertEquals(
    listBody(unimplemented, false),
    "upstream does not implement Health/List (UNIMPLEMENTED)\n",
  );
  assertEquals(JSON.parse(listBody(unimplemented, true)), {
    status: "UNIMPLEMENTED",
    reason: "upstream does not implement Health/List",
    services: [],
  });
  for (const outcome of ["CONNECTION_FAILED", "DEADLINE_EXCEEDED", "RPC_ERROR"] as const) {
    const r: ListResult = { failure: { service: "", outcome, detail: SECRET } };
    for (const json of [false, true]) {
      const body = listBody(r, json);
      assert(body.includes(outcome), body);
      assert(!body.includes("10.1.2.3"), "detail must not leak");
    }
  }
});

Deno.test("list bodies are bounded: entries capped and counted, names escaped and cut", () => {
  const many = listed(
    ...Array.from({ length: MAX_LISTED + 5 }, (_, i): [string, Outcome] => [`s${i}`, "SERVING"]),
  );
  const lines = listBody(many, false).split("\n");
  assertEquals(lines.length, MAX_LISTED + 2); // entries, the count, the final newline
  assertEquals(lines.at(-2), "... 5 more");
  const parsed = JSON.parse(listBody(many, true));
  assertEquals([parsed.services.length, parsed.omitted], [MAX_LISTED, 5]);
  assertEquals(JSON.parse(listBody(many, true, 2)).omitted, MAX_LISTED + 3);

  // A name with spaces, markup or control characters stays one field on one line.
  assertEquals(listedName("a b<\n>"), "a\\u{20}b\\u{3c}\\u{a}\\u{3e}");
  assertEquals(listedName(""), '""');
  const long = listedName("x".repeat(100_000));
  assert(long.length <= 203 && long.endsWith("..."), String(long.length));
  const body = listBody(listed(["evil\r\nx SERVING", "NOT_SERVING"]), false);
  assertEquals(body.split("\n").length, 2);
});
