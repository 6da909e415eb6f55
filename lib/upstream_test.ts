import { assertEquals } from "../tests/assert.ts";
import { grpcErrorDetail } from "./upstream.ts";

Deno.test("grpcErrorDetail spells codes as Go's grpc does (log scrapers match on it)", () => {
  const line = (code: number) => grpcErrorDetail({ code, details: "d" });
  assertEquals(line(5), "rpc error: code = NotFound desc = d");
  assertEquals(line(1), "rpc error: code = Canceled desc = d");
  assertEquals(line(4), "rpc error: code = DeadlineExceeded desc = d");
  assertEquals(line(13), "rpc error: code = Internal desc = d");
  assertEquals(line(16), "rpc error: code = Unauthenticated desc = d");
  assertEquals(line(99), "rpc error: code = Code(99) desc = d");
});
