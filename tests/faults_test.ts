/**
 * Faults at the HTTP/2 and gRPC framing level, from a deliberately broken upstream: each gets a
 * defined answer in probe mode and server mode, nothing crashes, no stack trace is printed, and
 * the proxy answers correctly again once the upstream behaves.
 */

import { assert, assertEquals, assertEventually } from "./assert.ts";
import { type RawFault, startRawUpstream } from "./fixture/raw_upstream.ts";
import { runMain, serveInFront } from "./helpers.ts";
import { parseFlags } from "../lib/flags.ts";
import { capturingLogger, silentLogger } from "../lib/log.ts";
import { startServer } from "../lib/server.ts";

/** The defined answer for each fault: probe exit code, HTTP status and body. */
export const faultMatrix: Record<Exclude<RawFault, "serving">, [number, number, string]> = {
  "goaway": [3, 503, "RPC_ERROR"],
  "rst": [3, 503, "RPC_ERROR"],
  "bad-protobuf": [3, 503, "RPC_ERROR"],
  "unknown-enum": [4, 503, "UNKNOWN"],
  "negative-enum": [4, 503, "UNKNOWN"],
  // A message without a grpc-status is an error on every path (the fast path reads trailers).
  "no-trailers": [3, 503, "RPC_ERROR"],
  "http-500": [3, 503, "RPC_ERROR"],
  "truncated": [3, 503, "RPC_ERROR"],
  "huge": [3, 503, "RPC_ERROR"],
};

Deno.test({
  name: "broken upstream answers get defined answers in probe and server mode",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    for (const [fault, [probeExit, http, body]] of Object.entries(faultMatrix)) {
      await t.step(fault, async () => {
        const upstream = await startRawUpstream(fault as RawFault);
        const parsed = parseFlags([
          `-grpcaddr=${upstream.target}`,
          "-http-listen-addr=127.0.0.1:0",
          "-metrics-http-listen-addr=",
          // None of these faults is a timeout: generous timeouts keep a busy machine out of it.
          "-rpc-timeout=30s",
          "-connect-timeout=30s",
        ]);
        assert(parsed.ok);
        const server = await startServer(parsed.config, silentLogger);
        try {
          const probe = await runMain([
            `-addr=${upstream.target}`,
            "-rpc-timeout=30s",
            "-connect-timeout=30s",
          ]);
          assertEquals(probe.code, probeExit, probe.stderr);
          assertEquals(probe.stderr.trim().split("\n").length, 1, probe.stderr);
          assert(!/\n\s+at |Uncaught/.test(probe.stderr), probe.stderr);

          const res = await fetch(server.health.url);
          assertEquals([res.status, await res.text()], [http, `${body}\n`]);
          // The proxy keeps serving: once the upstream behaves, the answer is right again.
          upstream.fault = "serving";
          await assertEventually(async () => {
            const again = await fetch(server.health.url);
            await again.body?.cancel();
            return again.status === 200;
          }, `healthy again after ${fault}`);
        } finally {
          await server.stop();
          await upstream.close();
        }
      });
    }
  },
});

Deno.test({
  name: "an upstream that drops every connection costs a few connections and log lines under load",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Each connection costs ~23 KB that Deno's node:http2 never frees (README, docs/faults.md),
    // so the number of connections is what bounds memory here.
    const upstream = await startRawUpstream("goaway");
    const { logger, lines } = capturingLogger();
    const server = await serveInFront(upstream, [], logger);
    try {
      const started = performance.now();
      const answers = new Map<string, number>();
      let sent = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (sent++ < 5_000) {
          const res = await fetch(server.health.url);
          const answer = `${res.status} ${(await res.text()).trim()}`;
          answers.set(answer, (answers.get(answer) ?? 0) + 1);
        }
      }));
      const seconds = (performance.now() - started) / 1000;
      // Holds of 100 ms doubling per dropped connection: about log2(10 s + 1) attempts in s
      // seconds; each attempt may open two connections (the channel is replaced when dead).
      const attempts = Math.ceil(Math.log2(10 * seconds + 1)) + 1;
      const where = `${upstream.connections} connections in ${seconds.toFixed(1)} s for ${
        JSON.stringify([...answers])
      }`;
      assert(upstream.connections <= 4 * attempts, where);
      assertEquals([...answers.keys()].every((a) => a.startsWith("503 ")), true, where);
      const changes = lines.filter((l) => l.msg.startsWith("upstream state change"));
      assert(changes.length <= 2 * attempts, `${changes.length} state-change lines; ${where}`);
    } finally {
      await server.stop();
      await upstream.close();
    }
  },
});
