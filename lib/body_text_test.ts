import { assert, assertEquals } from "../tests/assert.ts";
import { explanations, MAX_SHOWN_NAME, serviceEntry, shown, shownName } from "./body_text.ts";
import { type Outcome, statusTable } from "./status.ts";

Deno.test("names are escaped outside printable ASCII, markup and backslash included", () => {
  assertEquals(shown("a.v1.A"), "a.v1.A");
  assertEquals(shown("a\nb"), "a\\u{a}b");
  assertEquals(shown(`<&>"'\\`), "\\u{3c}\\u{26}\\u{3e}\\u{22}\\u{27}\\u{5c}");
  assertEquals(shown("ü✓"), "\\u{fc}\\u{2713}");
  // A name that spells an escape reads differently from the character it spells.
  assert(shown("\\u{3c}") !== shown("<"));
});

Deno.test("long names are cut with a marker, whatever their length", () => {
  assertEquals(shownName("x".repeat(MAX_SHOWN_NAME)), "x".repeat(MAX_SHOWN_NAME));
  assertEquals(shownName("x".repeat(MAX_SHOWN_NAME + 1)), "x".repeat(MAX_SHOWN_NAME) + "...");
  assertEquals(shownName("\n".repeat(1_000_000)).length, MAX_SHOWN_NAME + 3);
});

Deno.test("JSON entries: a reason from the fixed table for every outcome but SERVING", () => {
  assertEquals(serviceEntry({ service: "a", outcome: "SERVING", detail: "x" }), {
    service: "a",
    status: "SERVING",
  });
  for (const outcome of Object.keys(statusTable) as Outcome[]) {
    if (outcome === "SERVING") continue;
    const e = serviceEntry({ service: "<a>", outcome, detail: "10.1.2.3 refused" });
    assertEquals(e, { service: "\\u{3c}a\\u{3e}", status: outcome, reason: explanations[outcome] });
  }
});
