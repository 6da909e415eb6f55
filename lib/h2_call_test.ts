import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import { HealthFixture } from "../tests/fixture/health_server.ts";
import { startRawUpstream } from "../tests/fixture/raw_upstream.ts";
import { certText, silentTcpServer } from "../tests/helpers.ts";
import { H2Connection, type H2Target } from "./h2_call.ts";
import type { HeaderField } from "./hpack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const CHECK: Uint8Array = Uint8Array.from([0, 0, 0, 0, 0]); // HealthCheckRequest{service: ""}

function request(target: H2Target): HeaderField[] {
  return [
    [":method", "POST"],
    [":scheme", target.tls ? "https" : "http"],
    [":path", "/grpc.health.v1.Health/Check"],
    [":authority", `${target.hostname}:${target.port}`],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
  ];
}

const field = (fields: HeaderField[] | undefined, name: string) =>
  fields?.find(([n]) => n === name)?.[1];

/** The error `promise` rejects with. */
async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected a rejection");
}

Deno.test({
  name: "h2_call: unary calls against a grpc-js server, twice on one connection",
  ...opts,
  fn: async () => {
    const f = await HealthFixture.start();
    const target = { hostname: "127.0.0.1", port: f.port };
    const signal = new AbortController().signal;
    const h2 = await H2Connection.open(target, signal);
    try {
      for (let i = 0; i < 2; i++) {
        const res = await h2.request(request(target), CHECK, 1000, signal);
        assertEquals(field(res.headers, ":status"), "200");
        assertMatch(field(res.headers, "content-type") ?? "", /^application\/grpc/);
        assertEquals(field(res.trailers, "grpc-status"), "0");
        assertEquals([...res.data], [0, 0, 0, 0, 2, 8, 1], "one message: SERVING");
      }
      assertEquals(f.checkCount(""), 2);
    } finally {
      h2.close();
      await f.stop();
    }
  },
});

Deno.test({
  name:
    "h2_call: TLS verifies the server against the given CA, with or without a client certificate",
  ...opts,
  fn: async () => {
    const tls = await HealthFixture.start({ tls: "tls" });
    const mtls = await HealthFixture.start({ tls: "mtls" });
    const signal = new AbortController().signal;
    try {
      const ca = { caCerts: [certText("ca.pem")] };
      const client = { cert: certText("client.pem"), key: certText("client-key.pem") };
      for (const [f, material] of [[tls, ca], [mtls, { ...ca, ...client }]] as const) {
        const target = { hostname: "localhost", port: f.port, tls: material };
        const h2 = await H2Connection.open(target, signal);
        const res = await h2.request(request(target), CHECK, 1000, signal).finally(() =>
          h2.close()
        );
        assertEquals(field(res.trailers, "grpc-status"), "0");
      }
      const wrongCa = {
        hostname: "localhost",
        port: tls.port,
        tls: { caCerts: [certText("other-ca.pem")] },
      };
      assertMatch(await rejection(H2Connection.open(wrongCa, signal)), /certificate|Unknown/i);
    } finally {
      await Promise.all([tls.stop(), mtls.stop()]);
    }
  },
});

Deno.test({
  name: "h2_call: resets, GOAWAY and oversized answers are errors, never answers",
  ...opts,
  fn: async (t) => {
    const cases = [["rst", /RST_STREAM/], ["goaway", /GOAWAY|closed/], [
      "huge",
      /more DATA/,
    ]] as const;
    for (const [fault, expected] of cases) {
      await t.step(fault, async () => {
        const raw = await startRawUpstream(fault);
        const target = { hostname: "127.0.0.1", port: raw.port };
        const signal = new AbortController().signal;
        try {
          const h2 = await H2Connection.open(target, signal);
          const why = await rejection(h2.request(request(target), CHECK, 70_000, signal));
          h2.close();
          assertMatch(why, expected);
        } finally {
          await raw.close();
        }
      });
    }
  },
});

Deno.test({
  name: "h2_call: an abort ends a call to a server that never answers",
  ...opts,
  fn: async () => {
    const silent = silentTcpServer();
    const target = { hostname: "127.0.0.1", port: silent.port };
    const controller = new AbortController();
    try {
      const h2 = await H2Connection.open(target, controller.signal);
      const pending = rejection(h2.request(request(target), CHECK, 1000, controller.signal));
      // Wait for the request to reach the server, then give up on it.
      while (silent.firstBytes().length === 0) await new Promise((r) => setTimeout(r, 10));
      controller.abort();
      assertEquals(await pending, "cancelled");
      assert(silent.firstBytes()[0].startsWith("PRI * HTTP/2.0"), "the preface went first");
    } finally {
      silent.close();
    }
  },
});
