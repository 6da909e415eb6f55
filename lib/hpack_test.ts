import { assertEquals } from "../tests/assert.ts";
import { decodeHuffman, encodeHeaders, HeaderDecoder, type HeaderField } from "./hpack.ts";

const hex = (text: string) => Uint8Array.from(text.match(/../g)!.map((b) => parseInt(b, 16)));

function assertThrows(fn: () => unknown, part: string): void {
  try {
    fn();
  } catch (err) {
    if (!(err as Error).message.includes(part)) throw err;
    return;
  }
  throw new Error(`expected an error with "${part}"`);
}

Deno.test("hpack: RFC 7541 C.4, requests with Huffman strings and the dynamic table", () => {
  const decoder = new HeaderDecoder();
  const base: HeaderField[] = [[":method", "GET"], [":scheme", "http"], [":path", "/"]];
  assertEquals(decoder.decode(hex("828684418cf1e3c2e5f23a6ba0ab90f4ff")), [
    ...base,
    [":authority", "www.example.com"],
  ]);
  assertEquals(decoder.decode(hex("828684be5886a8eb10649cbf")), [
    ...base,
    [":authority", "www.example.com"],
    ["cache-control", "no-cache"],
  ]);
  assertEquals(
    decoder.decode(hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")),
    [
      [":method", "GET"],
      [":scheme", "https"],
      [":path", "/index.html"],
      [":authority", "www.example.com"],
      ["custom-key", "custom-value"],
    ],
  );
});

Deno.test("hpack: a gRPC response, its trailers and a trailers-only error (from hpack.js)", () => {
  const decoder = new HeaderDecoder();
  const type: HeaderField = ["content-type", "application/grpc"];
  assertEquals(
    decoder.decode(hex(
      "885f8b1d75d0620d263d4c4d6564408e9acac8b0c842d6958b510f21aa9b903485a9264fafa90b2d03497ea6f66aff",
    )),
    [[":status", "200"], type, ["grpc-accept-encoding", "identity,deflate,gzip"]],
  );
  assertEquals(decoder.decode(hex("40889acac8b21234da8f810740899acac8b5254207317f80")), [
    ["grpc-status", "0"],
    ["grpc-message", ""],
  ]);
  assertEquals(
    decoder.decode(hex("88c17f00816f7f0092b6aeb51fc54a20b677310aa4a73aa20463b3")),
    [[":status", "200"], type, ["grpc-status", "5"], [
      "grpc-message",
      "unknown service foo%20bar",
    ]],
  );
});

Deno.test("hpack: every octet's Huffman code decodes (all 256, encoded by hpack.js)", () => {
  const all =
    "ffc7fffd8fffffe2fffffe3fffffe4fffffe5fffffe6fffffe7fffffe8ffffeafffffff3fffffa7fffffabffffffdff" +
    "fffebfffffecfffffedfffffeefffffefffffff0ffffff1ffffff2fffffffbfffffcffffffd3fffffd7fffffdbfffff" +
    "dffffffe3fffffe7fffffebfffffed4fe3f9ffaffcabf1febfafefe7fdfd2cbb00089969b71d79fb9f7fff20ffbff3f" +
    "f50ddbd7f061c58f265cd9f469d5af66dddbf871e5f9cff7ff7fffc3ff9ffe45fff4719242cb34e6e9d68a6a3d7dac4" +
    "26defe3cfaf7fffbfe7ffbffdffffffcfffe6ffff4bfff9ffffa3fffd3ffff53fffd5ffffb3fffeb7fffdaffffb7fff" +
    "f73fffeeffffdeffffebffffbfffffd9ffffdbfffebffffe0ffffeeffffc3ffff8bffff1ffffe4fffee7fffb1ffff97" +
    "fffd9ffffcdffff9fffffbffffdafffeeffff4ffffb7fffee7fffe8ffffd3fffdeffffd5fffeeffffbdffffe1fffdff" +
    "fff7fffff5ffffecffff07fff87fffe0ffff17fffedffff87ffff77fffeffffeaffff8bfffe3ffff93ffff87fffcbff" +
    "ff37ffff1fffff83ffffe1fffebfffe3ffff3fffff2ffffa3ffffd9fffff17ffffc7fffff27ffffdefffffbffffff2f" +
    "ffff8fffffb7fff97fff8fffffe6fffffc1fffff87ffffe7fffffc5ffffe5fffe4ffff2fffffd1fffff4ffffffeffff" +
    "fe3fffffc9fffff97fffb3ffffcffffb7fffcdffff4ffff9ffffd1ffffcffffeaffffafffffddffffeffffff4fffff5" +
    "fffffabffffa7ffffd7fffff9bffffecfffffb7fffff3fffffe8fffffd3fffffabfffff5fffffff7ffffecfffffdbff" +
    "fffbbfffff7ffffff0fffffbbf";
  const expected = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("");
  assertEquals(decodeHuffman(hex(all)), expected);
});

Deno.test("hpack: malformed blocks are errors, not guesses", () => {
  assertThrows(() => decodeHuffman(hex("f1e3c2e5f23a6ba0ab90f400")), "padding");
  assertThrows(() => decodeHuffman(hex("ffffffff")), "EOS");
  assertThrows(() => new HeaderDecoder().decode(hex("80")), "no table entry 0");
  assertThrows(() => new HeaderDecoder().decode(hex("be")), "no table entry 62");
  assertThrows(() => new HeaderDecoder().decode(hex("3fe21f")), "over the limit");
  assertThrows(() => new HeaderDecoder().decode(hex("00")), "truncated");
  assertThrows(() => new HeaderDecoder().decode(hex("400a61")), "truncated");
});

Deno.test("hpack: a smaller table evicts the oldest entries", () => {
  const decoder = new HeaderDecoder();
  // Size update to 64 octets, then two literals with indexing of 33 octets each.
  const literal = (n: string) => [0x40, 1, n.charCodeAt(0), 0];
  decoder.decode(Uint8Array.from([0x3f, 0x21, ...literal("a"), ...literal("b")]));
  assertEquals(decoder.decode(hex("be")), [["b", ""]]);
  assertThrows(() => decoder.decode(hex("bf")), "no table entry 63");
});

Deno.test("hpack: the request encoder's literals decode back to the same fields", () => {
  const fields: HeaderField[] = [
    [":method", "POST"],
    [":path", "/grpc.health.v1.Health/Check"],
    ["x-long", "v".repeat(300)],
    ["x-repeated", "1"],
    ["x-repeated", "2"],
  ];
  const block = encodeHeaders(fields);
  assertEquals(new HeaderDecoder().decode(block), fields);
  assertEquals(block[0], 0x00); // literal without indexing, new name
});
