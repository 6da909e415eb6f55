/**
 * Background checking, thresholds, staleness, Watch, liveness and several services, against the
 * real fixture through the real listeners.
 */

import { assert, assertEquals, assertEventually } from "./assert.ts";
import { HealthFixture } from "./fixture/health_server.ts";
import { serveInFront } from "./helpers.ts";

const serve = serveInFront;

const opts = { sanitizeOps: false, sanitizeResources: false };

async function status(url: string): Promise<number> {
  const res = await fetch(url);
  await res.body?.cancel();
  return res.status;
}

/** Polls `url` until it answers `want`; returns the milliseconds it took (Infinity if never). */
async function msUntil(url: string, want: number, limitMs: number, stepMs = 10): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < limitMs) {
    if ((await status(url)) === want) return performance.now() - start;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return Infinity;
}

Deno.test({
  name: "-check-interval 1s: flips are seen within interval x threshold + rpc timeout",
  ...opts,
  fn: async (t) => {
    for (const [healthy, unhealthy] of [[1, 1], [2, 2]]) {
      await t.step(`healthy ${healthy}, unhealthy ${unhealthy}`, async () => {
        const fixture = await HealthFixture.start();
        const server = await serve(fixture, [
          "-check-interval=1s",
          `-healthy-threshold=${healthy}`,
          `-unhealthy-threshold=${unhealthy}`,
          "-rpc-timeout=1s",
        ]);
        try {
          const url = server.health.url;
          assertEquals(await status(url), 200);
          fixture.setStatus("", "NOT_SERVING");
          const down = await msUntil(url, 503, 10_000);
          assert(down <= 1000 * unhealthy + 1000, `503 after ${down} ms`);
          // Hysteresis: with a threshold of 2, one result is not enough to flip.
          if (unhealthy === 2) assert(down > 900, `flipped after one result (${down} ms)`);
          fixture.setStatus("", "SERVING");
          const up = await msUntil(url, 200, 10_000);
          assert(up <= 1000 * healthy + 1000, `200 after ${up} ms`);
        } finally {
          await server.stop();
          await fixture.stop();
        }
      });
    }
  },
});

Deno.test({
  name: "-watch: flips are seen within 100 ms",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    const server = await serve(fixture, ["-watch"]);
    try {
      const url = server.health.url;
      assertEquals(await status(url), 200);
      const flips: number[] = [];
      for (let i = 0; i < 3; i++) {
        fixture.setStatus("", "NOT_SERVING");
        flips.push(await msUntil(url, 503, 2000, 2));
        fixture.setStatus("", "SERVING");
        flips.push(await msUntil(url, 200, 2000, 2));
      }
      flips.sort((a, b) => a - b);
      assert(flips[Math.floor(flips.length / 2)] < 100, `flip times ${flips}`);
      assert(flips.at(-1)! < 500, `flip times ${flips}`);
      assertEquals(fixture.checkCount(), 0, "watch mode polled");
      assert(fixture.watchCount() >= 1);
    } finally {
      await server.stop();
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "-watch falls back to polling when Watch is UNIMPLEMENTED, and re-opens broken streams",
  ...opts,
  fn: async (t) => {
    await t.step("fallback", async () => {
      const fixture = await HealthFixture.start();
      fixture.watchBehavior = "unimplemented";
      const server = await serve(fixture, ["-watch", "-check-interval=200ms"]);
      try {
        assertEquals(await status(server.health.url), 200);
        fixture.setStatus("", "NOT_SERVING");
        assert((await msUntil(server.health.url, 503, 3000)) < 1500);
        assert(fixture.checkCount() >= 1);
      } finally {
        await server.stop();
        await fixture.stop();
      }
    });
    await t.step("re-open", async () => {
      const fixture = await HealthFixture.start();
      const server = await serve(fixture, ["-watch"]);
      try {
        assertEquals(await status(server.health.url), 200);
        await fixture.stop();
        assert((await msUntil(server.health.url, 503, 3000)) < 1000, "stopped upstream served");
        await fixture.restart();
        assert((await msUntil(server.health.url, 200, 5000)) < 3000, "restart not seen");
        assert(fixture.watchCount() >= 1);
      } finally {
        await server.stop();
        await fixture.stop();
      }
    });
  },
});

/** How long the load runs: long enough for several intervals, short enough for the fast tier. */
const LOAD_SECONDS = 4;

Deno.test({
  name:
    `64 concurrent clients for ${LOAD_SECONDS} s: about one upstream RPC per service per interval`,
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start({ statuses: { "": "SERVING", a: "SERVING" } });
    const server = await serve(fixture, [
      "-check-interval=1s",
      "-service-name=",
      "-service-name=a",
    ]);
    try {
      fixture.resetCounts();
      const until = performance.now() + LOAD_SECONDS * 1000;
      let requests = 0;
      let failures = 0;
      await Promise.all(Array.from({ length: 64 }, async (_, i) => {
        const client = Deno.createHttpClient({});
        const url = server.health.url + (i % 2 ? "/?serviceName=a" : "/");
        while (performance.now() < until) {
          const res = await fetch(url, { client });
          await res.body?.cancel();
          requests++;
          if (res.status !== 200) failures++;
        }
        client.close();
      }));
      const rpcs = fixture.checkCount();
      console.log(
        `${requests} requests, ${rpcs} upstream RPCs for 2 services over ${LOAD_SECONDS} s`,
      );
      assertEquals(failures, 0);
      // One per service per 1 s interval, plus one for the interval in progress and jitter.
      const perService = LOAD_SECONDS + 2;
      assert(rpcs <= 2 * perService, `${rpcs} RPCs`);
      assert(fixture.checkCount("a") <= perService && fixture.checkCount("") <= perService);
      assert(requests > 100 * rpcs, `${requests} requests for ${rpcs} RPCs`);
    } finally {
      await server.stop();
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "a stopped or hanging upstream is never SERVING after the staleness bound",
  ...opts,
  fn: async (t) => {
    for (const fault of ["stop", "hang"] as const) {
      await t.step(fault, async () => {
        const fixture = await HealthFixture.start();
        // A high unhealthy threshold: the bound, not the threshold, must end SERVING.
        const server = await serve(fixture, [
          "-check-interval=200ms",
          "-unhealthy-threshold=3",
          "-rpc-timeout=300ms",
          "-connect-timeout=300ms",
        ]);
        try {
          const url = server.health.url;
          assertEquals(await status(url), 200);
          if (fault === "stop") await fixture.stop();
          else fixture.behavior = "hang";
          const boundMs = (3 + 1) * 200 + 600;
          const start = performance.now();
          while (performance.now() - start < boundMs + 2000) {
            // The age when the request was sent: the answer cannot be older than that.
            const age = performance.now() - start;
            const s = await status(url);
            if (age > boundMs + 100) assertEquals(s, 503, `SERVING ${age} ms after the ${fault}`);
            await new Promise((r) => setTimeout(r, 25));
          }
        } finally {
          await server.stop();
          await fixture.stop();
        }
      });
    }
  },
});

Deno.test({
  name: "liveness path: 200 while the upstream answers, 503 when it cannot be reached",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start();
    // The hang step waits out the RPC timeout; shorter would turn answers into timeouts when
    // the machine is busy.
    const server = await serve(fixture, ["-http-liveness-path=/livez", "-rpc-timeout=2s"]);
    try {
      const base = server.health.url;
      assertEquals([await status(base + "/"), await status(base + "/livez")], [200, 200]);
      fixture.setStatus("", "NOT_SERVING");
      assertEquals([await status(base + "/"), await status(base + "/livez")], [503, 200]);
      fixture.behavior = "hang";
      assertEquals(await status(base + "/livez"), 503);
      fixture.behavior = "normal";
      await fixture.stop();
      assertEquals([await status(base + "/"), await status(base + "/livez")], [503, 503]);
    } finally {
      await server.stop();
      await fixture.stop();
    }
  },
});

Deno.test({
  name: "several services: 200 only when all are SERVING; the body lists each",
  ...opts,
  fn: async () => {
    const fixture = await HealthFixture.start({ statuses: { a: "SERVING", b: "SERVING" } });
    for (const extra of [[], ["-check-interval=100ms"]]) {
      const server = await serve(fixture, ["-service-name=a", "-service-name=b", ...extra]);
      try {
        const ok = await fetch(server.health.url);
        assertEquals([ok.status, await ok.text()], [200, "a SERVING\nb SERVING\n"]);
        fixture.setStatus("b", "NOT_SERVING");
        let bad = { status: 0, body: "" };
        await assertEventually(async () => {
          const res = await fetch(server.health.url);
          bad = { status: res.status, body: await res.text() };
          return bad.status !== 200;
        }, "the NOT_SERVING service to be seen");
        assertEquals([bad.status, bad.body], [503, "a SERVING\nb NOT_SERVING\n"]);
        fixture.setStatus("b", "SERVING");
      } finally {
        await server.stop();
      }
    }
    await fixture.stop();
  },
});
