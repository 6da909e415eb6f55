import { assertEquals } from "../tests/assert.ts";
import { embeddedProtoModule } from "../tools/embed_proto.ts";
import { healthProto } from "./health_proto.ts";

Deno.test("the embedded proto equals proto/health.proto (else: deno task embed-proto)", () => {
  const file = Deno.readTextFileSync(new URL("../proto/health.proto", import.meta.url));
  assertEquals(healthProto, file);
});

Deno.test("lib/health_proto.ts is exactly what tools/embed_proto.ts generates", async () => {
  const generated = embeddedProtoModule(healthProto);
  const formatted = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=ts", "-"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = formatted.stdin.getWriter();
  await w.write(new TextEncoder().encode(generated));
  await w.close();
  const out = new TextDecoder().decode((await formatted.output()).stdout);
  assertEquals(out, Deno.readTextFileSync(new URL("./health_proto.ts", import.meta.url)));
});

Deno.test("the embedded proto defines Check, Watch and List of grpc.health.v1.Health", () => {
  for (const rpc of ["rpc Check(", "rpc Watch(", "rpc List("]) {
    assertEquals(healthProto.includes(rpc), true, rpc);
  }
  assertEquals(healthProto.includes("package grpc.health.v1;"), true);
});
