/**
 * The listener's shipped timeouts, at their real values (the fast tier tests the same limits
 * with short injected ones in lib/listen_test.ts).
 */

import { assert } from "../assert.ts";
import { HealthFixture } from "../fixture/health_server.ts";
import { bytesOf, rawExchange } from "../fixture/raw_http.ts";
import { assertHealthy, serveInFront } from "../helpers.ts";

// Hardening, with the shipped timeouts: a client that never finishes its request headers is
// cut off after 15 s (lib/listen.ts defaultTimeouts.headersMs), and stalls only itself meanwhile.
Deno.test({
  name: "a client that never finishes its request headers is cut off and does not stall others",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const server = await serveInFront(fixture);
    try {
      const stalled = rawExchange(
        server.health.port,
        bytesOf("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "),
        { waitMs: 25_000 },
      );
      await new Promise((r) => setTimeout(r, 500));
      await assertHealthy(server.health.url, "while a client stalls");
      const a = await stalled;
      console.log(
        `\nunfinished headers: ${a.end} after ${a.ms} ms, status ${a.status ?? "none"}\n`,
      );
      assert(a.end !== "open", `still open after ${a.ms} ms`);
      assert(a.ms >= 12_000 && a.ms < 25_000, `cut off after ${a.ms} ms, expected about 15 s`);
      await assertHealthy(server.health.url, "after a client stalled");
    } finally {
      await server.stop();
      await fixture.stop();
    }
  },
});
