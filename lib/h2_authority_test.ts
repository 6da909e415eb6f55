import { Buffer } from "node:buffer";
import hpackModule from "hpack.js";
import { assertEquals } from "../tests/assert.ts";
import { AuthorityFiller } from "./h2_authority.ts";

/** hpack.js's own compressor and decompressor (Huffman coding, dynamic table) for the tests. */
const hpack = hpackModule as {
  compressor: {
    create(o: { table: { maxSize: number } }): {
      write(fields: { name: string; value: string }[]): void;
      read(): Buffer | null;
    };
  };
  decompressor: {
    create(o: { table: { maxSize: number } }): {
      write(b: Buffer): void;
      execute(): void;
      read(): { name: string; value: string } | null;
    };
  };
};

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out.set([payload.length >> 16, (payload.length >> 8) & 0xff, payload.length & 0xff, type, flags]);
  new DataView(out.buffer).setUint32(5, stream);
  out.set(payload, 9);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Splits bytes into frames (type, flags, stream, payload) after the preface. */
function frames(
  bytes: Uint8Array,
): { type: number; flags: number; stream: number; payload: Uint8Array }[] {
  const out = [];
  let at = PREFACE.length;
  while (at < bytes.length) {
    const len = (bytes[at] << 16) | (bytes[at + 1] << 8) | bytes[at + 2];
    out.push({
      type: bytes[at + 3],
      flags: bytes[at + 4],
      stream: new DataView(bytes.buffer, bytes.byteOffset).getUint32(at + 5),
      payload: bytes.subarray(at + 9, at + 9 + len),
    });
    at += 9 + len;
  }
  return out;
}

Deno.test("h2 authority filler: host added only to requests without :authority and host", () => {
  const comp = hpack.compressor.create({ table: { maxSize: 4096 } });
  const block = (fields: [string, string][]) => {
    comp.write(fields.map(([name, value]) => ({ name, value })));
    return new Uint8Array(comp.read()!);
  };
  const bare: [string, string][] = [[":method", "GET"], [":scheme", "https"], [
    ":path",
    "/healthz",
  ], ["user-agent", "haproxy-check-with-a-long-agent-name"]];
  const input = concat([
    PREFACE,
    frame(0x4, 0, 0, new Uint8Array(0)), // SETTINGS
    frame(0x1, 0x5, 1, block(bare)), // no authority
    frame(0x1, 0x5, 3, block(bare)), // again: now from the dynamic table
    frame(0x1, 0x5, 5, block([...bare, [":authority", "a.test"]])),
    frame(0x1, 0x5, 7, block([...bare, ["host", "h.test"]])),
  ]);
  const filler = new AuthorityFiller("127.0.0.1");
  const out = concat(filler.feed(input));
  // Byte by byte: the same result.
  const slow = new AuthorityFiller("127.0.0.1");
  assertEquals(concat([...input].flatMap((b) => slow.feed(new Uint8Array([b])))), out);

  const decomp = hpack.decompressor.create({ table: { maxSize: 4096 } });
  const decoded = frames(out).filter((f) => f.type === 0x1).map((f) => {
    decomp.write(Buffer.from(f.payload));
    decomp.execute();
    const fields: string[] = [];
    for (let h = decomp.read(); h !== null; h = decomp.read()) fields.push(`${h.name}: ${h.value}`);
    return [f.stream, f.flags, fields.filter((x) => /^(:authority|host|:path)/.test(x))];
  });
  assertEquals(decoded, [
    [1, 0x5, [":path: /healthz", "host: 127.0.0.1"]],
    [3, 0x5, [":path: /healthz", "host: 127.0.0.1"]],
    [5, 0x5, [":path: /healthz", ":authority: a.test"]],
    [7, 0x5, [":path: /healthz", "host: h.test"]],
  ]);
  // Requests that had a name pass byte for byte.
  assertEquals(frames(out).slice(3), frames(input).slice(3));
});

Deno.test("h2 authority filler: padding, priority and CONTINUATION; garbage passes unchanged", () => {
  // :method GET, :scheme https, :path / (static table), split over two frames.
  const fragment = new Uint8Array([0x82, 0x87, 0x84]);
  const headers = concat([
    new Uint8Array([2]), // pad length
    new Uint8Array([0, 0, 0, 0, 15]), // priority
    fragment.subarray(0, 2),
    new Uint8Array([0, 0]), // padding
  ]);
  const input = concat([
    PREFACE,
    frame(0x1, 0x8 | 0x20 | 0x1, 1, headers), // PADDED | PRIORITY | END_STREAM
    frame(0x9, 0x4, 1, fragment.subarray(2)), // CONTINUATION, END_HEADERS
  ]);
  const out = frames(concat(new AuthorityFiller("h").feed(input)));
  assertEquals(out.length, 1);
  assertEquals(out[0].flags, 0x20 | 0x1 | 0x4);
  assertEquals([...out[0].payload], [
    0,
    0,
    0,
    0,
    15,
    0x82,
    0x87,
    0x84,
    0,
    4,
    0x68,
    0x6f,
    0x73,
    0x74,
    1,
    0x68,
  ]);

  // An index beyond the tables: not decodable, so passed on for nghttp2 to refuse.
  const bad = concat([PREFACE, frame(0x1, 0x5, 1, new Uint8Array([0xff, 0x7f]))]);
  const filler = new AuthorityFiller("h");
  assertEquals(concat(filler.feed(bad)), bad);
  const later = frame(0x1, 0x5, 3, fragment);
  assertEquals(concat(filler.feed(later)), later);
});
