import { Buffer } from "node:buffer";
import * as protoLoader from "@grpc/proto-loader";
import { assert, assertEquals } from "../tests/assert.ts";
import {
  decodeHealthCheckRequest,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  encodeHealthCheckResponse,
  servingStatusName,
  servingStatusNames,
} from "./health_codec.ts";

// The reference: protobufjs (through proto-loader) reading the repository's health proto.
function reference() {
  const path = new URL("../proto/health.proto", import.meta.url).pathname;
  const def = protoLoader.loadSync(path, { keepCase: true, enums: Number, defaults: true });
  const check = def["grpc.health.v1.Health"] as protoLoader.ServiceDefinition;
  return check.Check;
}

const method = reference();
const names = ["", "a", "grpc.health.v1.Health", "ünïcødé ✓", "x".repeat(300), "x".repeat(20000)];

Deno.test("HealthCheckRequest encodes as protobufjs does and round-trips", () => {
  for (const name of names) {
    const ours = encodeHealthCheckRequest(name);
    const theirs = method.requestSerialize({ service: name });
    // protobufjs writes a field set to its default; proto3 (and Go) omit it: both are valid.
    if (name !== "") {
      assertEquals(Buffer.from(ours).toString("hex"), theirs.toString("hex"), name.slice(0, 20));
    }
    assertEquals(decodeHealthCheckRequest(theirs), name);
    assertEquals(decodeHealthCheckRequest(ours), name);
    assertEquals(
      (method.requestDeserialize(Buffer.from(ours)) as { service: string }).service,
      name,
    );
  }
});

Deno.test("HealthCheckResponse decodes what protobufjs encodes, every enum value", () => {
  for (let status = 0; status < servingStatusNames.length; status++) {
    const theirs = method.responseSerialize({ status });
    const ours = encodeHealthCheckResponse(status);
    assertEquals(decodeHealthCheckResponse(theirs), status);
    assertEquals(
      (method.responseDeserialize(Buffer.from(ours)) as { status: number }).status,
      status,
    );
    // protobufjs writes a field set to its default; proto3 (and Go) omit it: both are valid.
    if (status !== 0) assertEquals(Buffer.from(ours).toString("hex"), theirs.toString("hex"));
    assertEquals(servingStatusName(status), servingStatusNames[status]);
  }
});

Deno.test("unknown enum values, negative values and unknown fields are handled", () => {
  // An enum value the proto does not name: kept as a number, named UNKNOWN.
  assertEquals(decodeHealthCheckResponse(method.responseSerialize({ status: 7 })), 7);
  assertEquals(servingStatusName(7), "UNKNOWN");
  // -1 is sign-extended to ten bytes on the wire.
  const negative = Uint8Array.from([
    0x08,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0x01,
  ]);
  assertEquals(decodeHealthCheckResponse(negative), -1);
  assertEquals(servingStatusName(-1), "UNKNOWN");
  // Unknown fields of every wire type before the status are skipped.
  const withUnknown = Uint8Array.from([
    0x10,
    0x05, // field 2 varint
    0x19,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8, // field 3 fixed64
    0x22,
    0x02,
    0x61,
    0x62, // field 4 bytes
    0x2d,
    1,
    2,
    3,
    4, // field 5 fixed32
    0x08,
    0x01, // status = SERVING
  ]);
  assertEquals(decodeHealthCheckResponse(withUnknown), 1);
  // The last value of a repeated scalar field wins, as in protobuf.
  assertEquals(decodeHealthCheckResponse(Uint8Array.from([0x08, 0x02, 0x08, 0x01])), 1);
  assertEquals(decodeHealthCheckResponse(new Uint8Array(0)), 0);
});

Deno.test("malformed responses throw RangeError, never anything else", () => {
  const bad = [
    [0x08], // truncated varint
    [0x08, 0x80, 0x80], // truncated varint
    [0x08, ...new Array(11).fill(0xff)], // varint too long
    [0x12, 0x05, 0x01], // truncated bytes
    [0x0b], // group start (wire type 3)
    [0x19, 1, 2], // truncated fixed64
  ];
  for (const bytes of bad) {
    let threw: unknown;
    try {
      decodeHealthCheckResponse(Uint8Array.from(bytes));
    } catch (err) {
      threw = err;
    }
    assert(threw instanceof RangeError, `no RangeError for ${bytes}`);
  }
});

Deno.test("random bytes never crash the decoder with anything but RangeError", () => {
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 5000; i++) {
    const bytes = Uint8Array.from(
      { length: Math.floor(rand() * 12) },
      () => Math.floor(rand() * 256),
    );
    try {
      const status = decodeHealthCheckResponse(bytes);
      assert(Number.isInteger(status));
    } catch (err) {
      assert(err instanceof RangeError, String(err));
    }
  }
});
