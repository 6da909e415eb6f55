import { Buffer } from "node:buffer";
import * as protoLoader from "@grpc/proto-loader";
import { assert, assertEquals } from "../tests/assert.ts";
import {
  decodeHealthCheckRequest,
  decodeHealthCheckResponse,
  decodeHealthListResponse,
  encodeHealthCheckRequest,
  encodeHealthCheckResponse,
  encodeHealthListResponse,
  servingStatusName,
  servingStatusNames,
} from "./health_codec.ts";

// The reference: protobufjs (through proto-loader) reading the repository's health proto.
function reference() {
  const path = new URL("../proto/health.proto", import.meta.url).pathname;
  const def = protoLoader.loadSync(path, { keepCase: true, enums: Number, defaults: true });
  return def["grpc.health.v1.Health"] as protoLoader.ServiceDefinition;
}

const method = reference().Check;
const listMethod = reference().List;
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

/** A HealthListResponse as protobufjs reads it, as sorted pairs. */
function theirList(bytes: Uint8Array): [string, number][] {
  const decoded = listMethod.responseDeserialize(Buffer.from(bytes)) as {
    statuses: Record<string, { status: number }>;
  };
  return Object.entries(decoded.statuses).map(([s, v]): [string, number] => [s, v.status]).sort();
}

Deno.test("HealthListResponse round-trips against protobufjs, both ways", () => {
  const cases: [string, number][][] = [
    [],
    [["", 1]],
    [["", 1], ["a", 2], ["grpc.health.v1.Health", 3], ["ünïcødé ✓", 0], ["x".repeat(300), 1]],
    Array.from({ length: 1000 }, (_, i) => [`svc${i}`, i % 4] as [string, number]),
  ];
  for (const statuses of cases) {
    const sorted = [...statuses].sort();
    const ours = encodeHealthListResponse(statuses);
    assertEquals(theirList(ours), sorted);
    assertEquals(decodeHealthListResponse(ours).sort(), sorted);
    const theirs = listMethod.responseSerialize({
      statuses: Object.fromEntries(statuses.map(([s, status]) => [s, { status }])),
    });
    assertEquals(decodeHealthListResponse(theirs).sort(), sorted);
  }
  // HealthListRequest has no fields: the empty message is what protobufjs writes too.
  assertEquals(listMethod.requestSerialize({}).length, 0);
});

Deno.test("HealthListResponse: missing key or value, repeated keys, unknown fields", () => {
  // An entry with neither key nor value: service "" with status 0 (UNKNOWN), as proto3 says
  // (protobufjs fails on a missing value, so it is compared with a key-less entry only).
  assertEquals(decodeHealthListResponse(Uint8Array.from([0x0a, 0x00])), [["", 0]]);
  const keyless = Uint8Array.from([0x0a, 0x02, 0x12, 0x00]);
  assertEquals(decodeHealthListResponse(keyless), [["", 0]]);
  assertEquals(theirList(keyless), [["", 0]]);
  // A repeated key keeps its last value, as protobuf maps do.
  const twice = Uint8Array.from([
    ...encodeHealthListResponse([["a", 1]]),
    ...encodeHealthListResponse([["a", 2]]),
  ]);
  assertEquals(decodeHealthListResponse(twice), [["a", 2]]);
  assertEquals(theirList(twice), [["a", 2]]);
  // Unknown fields outside and inside an entry are skipped.
  const unknown = Uint8Array.from([
    0x10,
    0x05,
    0x0a,
    0x07,
    0x18,
    0x01,
    0x0a,
    0x01,
    0x62,
    0x12,
    0x00,
  ]);
  assertEquals(decodeHealthListResponse(unknown), [["b", 0]]);
});

Deno.test("malformed HealthListResponse throws RangeError or TypeError, never anything else", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const valid = encodeHealthListResponse([["a", 1], ["bb", 2]]);
  for (let i = 0; i < 5000; i++) {
    // Random bytes, and valid messages with one byte changed or cut short.
    const bytes = i % 2 === 0
      ? Uint8Array.from({ length: Math.floor(rand() * 16) }, () => Math.floor(rand() * 256))
      : valid.slice(0, 1 + Math.floor(rand() * valid.length));
    if (i % 4 === 1) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    try {
      for (const [s, status] of decodeHealthListResponse(bytes)) {
        assert(typeof s === "string" && Number.isInteger(status));
      }
    } catch (err) {
      assert(err instanceof RangeError || err instanceof TypeError, String(err));
    }
  }
  for (const bytes of [[0x0a], [0x0a, 0x05, 0x0a], [0x0a, 0x03, 0x0a, 0x01, 0xff]]) {
    let threw: unknown;
    try {
      decodeHealthListResponse(Uint8Array.from(bytes));
    } catch (err) {
      threw = err;
    }
    assert(threw instanceof RangeError || threw instanceof TypeError, `no error for ${bytes}`);
  }
});
