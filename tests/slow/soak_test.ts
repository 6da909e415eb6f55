/**
 * A short soak (12 s per mode) of the real program in server mode, in front of an upstream whose
 * status flips every 2-3 s, at 200 requests/s: no answer contradicts the upstream state of its
 * window, no request fails, no stack trace, exit 0 on SIGTERM, and RSS stays within a generous
 * bound. `deno task soak` runs the long version (`tools/soak.ts`).
 */

import { assert, assertEquals } from "../assert.ts";
import { soak, type SoakMode, summary } from "../../tools/soak.ts";

const SECONDS = 12;
/**
 * Growth of RSS from after the warm-up to the end that a short run may show. With on-demand
 * checks at 200 req/s the V8 heap grows by about 33 MB over such a run (about 3 MB/s) and levels
 * off near 190 MB after about 30 s (`deno task soak` prints the curve); with background checks it
 * grows about 6 MB. The end figure is steady (~153 MB on demand in five CI runs), but the start
 * is not: when server mode's collection after a burst (lib/heap_release.ts) runs just before
 * the warm-up ends, the start is ~15 MB lower (103 instead of 116-120 MB), hence the margin. A
 * leak of the size that matters shows in the long run's last third.
 */
const RSS_GROWTH_BOUND_MB = 64;

for (const mode of ["on-demand", "background"] as SoakMode[]) {
  Deno.test({
    name: `soak ${SECONDS} s, ${mode}: answers agree with the upstream, memory bounded`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const r = await soak({ mode, seconds: SECONDS });
      console.log(summary(r));
      console.log(`answers: ${JSON.stringify(r.answers)}`);
      assertEquals(r.samples, [], `${r.contradictions} contradictions`);
      assertEquals(r.contradictions, 0);
      assertEquals(r.httpErrors, 0);
      assertEquals(r.crashLines, []);
      assertEquals(r.exitCode, 0);
      // The rate held: at least 90% of 200 req/s.
      assert(r.requests >= 0.9 * 200 * SECONDS, `only ${r.requests} requests`);
      assert(r.flips >= 3, `only ${r.flips} flips`);
      // Every flip was seen: the proxy logs one line per change of the served state.
      assert(r.loggedStateChanges >= r.flips, `${r.loggedStateChanges} logged changes`);
      assert(Number.isFinite(r.rssStartMb) && Number.isFinite(r.rssEndMb), "RSS not read");
      assert(
        r.rssEndMb - r.rssStartMb < RSS_GROWTH_BOUND_MB,
        `RSS grew ${(r.rssEndMb - r.rssStartMb).toFixed(1)} MB`,
      );
    },
  });
}
