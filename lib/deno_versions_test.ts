import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import { root } from "../tests/helpers.ts";
import { denoVersionWarning, pinnedDenoVersion } from "./deno_versions.ts";

Deno.test("denoVersionWarning: 2.9.4 to 2.9.6 warn, with the issue and the pinned version", () => {
  for (const v of ["2.9.4", "2.9.5", "2.9.6", "2.9.5+abc1234"]) {
    const w = denoVersionWarning(v);
    assert(w, v);
    assertMatch(w, /aborts inside nghttp2 when the upstream sends GOAWAY/);
    assertMatch(w, /denoland\/deno\/issues\/36788/);
    assertMatch(w, new RegExp(`Deno ${pinnedDenoVersion.replaceAll(".", "\\.")}, the pinned`));
    assert(!w.includes("\n"));
  }
  for (const v of ["2.9.3", "2.9.7", "2.10.0", "3.0.0", "1.46.3"]) {
    assertEquals(denoVersionWarning(v), undefined, v);
  }
});

Deno.test("the pinned Deno version is the one CI installs", () => {
  const ci = Deno.readTextFileSync(`${root}.ci/deno-version`);
  assertEquals(/^DENO_VERSION=(.+)$/m.exec(ci)?.[1], pinnedDenoVersion);
});
