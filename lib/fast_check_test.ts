import { assertEquals } from "../tests/assert.ts";
import { checkUrl, fastPathUnsupported, grpcTimeoutHeader } from "./fast_check.ts";
import type { UpstreamOptions } from "./upstream_options.ts";
import { parseFlags } from "./flags.ts";

/** The upstream options of `-addr=127.0.0.1:50051` with every other flag at its default. */
const base: UpstreamOptions = (() => {
  const parsed = parseFlags(["-addr=127.0.0.1:50051"]);
  if (!parsed.ok) throw new Error("the base flags must parse");
  return parsed.config;
})();

Deno.test("grpcTimeoutHeader spells a deadline as grpc-js does", () => {
  assertEquals(grpcTimeoutHeader(1000), "1000m");
  assertEquals(grpcTimeoutHeader(0), "0m");
  assertEquals(grpcTimeoutHeader(99_999_999), "99999999m");
  assertEquals(grpcTimeoutHeader(100_000_000), "100000S");
});

Deno.test("checkUrl takes only host:port targets it dials and names as grpc-js does", () => {
  const url = (addr: string, tls = false) => checkUrl({ addr, tls })?.href;
  assertEquals(url("127.0.0.1:5"), "http://127.0.0.1:5/grpc.health.v1.Health/Check");
  assertEquals(url(":5"), "http://localhost:5/grpc.health.v1.Health/Check");
  assertEquals(url("[::1]:5", true), "https://[::1]:5/grpc.health.v1.Health/Check");
  assertEquals(url("svc.local:443", true), undefined, "a default port would leave :authority");
  assertEquals(url("Svc:5"), undefined, "URL parsing would lower-case the authority");
  assertEquals(url("unix:///tmp/s.sock"), undefined);
  assertEquals(url("dns:///localhost:5"), undefined);
  assertEquals(url("localhost"), undefined);
  assertEquals(url("host:99999"), undefined);
});

Deno.test("fastPathUnsupported names what only grpc-js can do", () => {
  assertEquals(fastPathUnsupported(base), undefined);
  assertEquals(fastPathUnsupported({ ...base, gzip: true }), "-gzip");
  assertEquals(fastPathUnsupported({ ...base, tls: true, tlsNoVerify: true }), "-tls-no-verify");
  assertEquals(
    fastPathUnsupported({ ...base, tls: true, tlsServerName: "x" }),
    "-tls-server-name",
  );
  // Repeated names are sent as separate fields, as grpc-js sends them.
  assertEquals(fastPathUnsupported({ ...base, rpcHeaders: [["a", "1"], ["a", "2"]] }), undefined);
});
