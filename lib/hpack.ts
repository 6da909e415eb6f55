/**
 * HPACK (RFC 7541), as much as the probe's HTTP/2 client needs: a full decoder for the header
 * blocks a server sends (static and dynamic table, Huffman strings, table size updates) and an
 * encoder that writes every field as a plain literal without indexing (always valid, and the
 * request is a handful of short fields sent once per connection).
 *
 * @module
 */

/** A header field: lower-case name, value (one character per octet). */
export type HeaderField = [name: string, value: string];

/** RFC 7541 appendix A. */
const STATIC_TABLE: readonly HeaderField[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ...[
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
  ].map((name): HeaderField => [name, name === "accept-encoding" ? "gzip, deflate" : ""]),
];

/**
 * The Huffman code of RFC 7541 appendix B is canonical, so the code length of each symbol
 * (0-255, then EOS) defines it: one character per symbol, its code point minus 60.
 */
const HUFFMAN_LENGTHS =
  "ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCCCCCCCCCCCCCCCCCCCCDCDI" +
  "OIJBKABABABBBACCBBBABCBAABCCCCCKGJIXPRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSP" +
  "RRRSRRSVVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWVZ";

const EOS = 256;

/** Per code length: the first code, how many codes, and where their symbols start. */
const huffman = (() => {
  const lengths = [...HUFFMAN_LENGTHS].map((c) => c.charCodeAt(0) - 60);
  const symbols = lengths.map((_, s) => s).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const first = new Array<number>(31).fill(0);
  const count = new Array<number>(31).fill(0);
  const offset = new Array<number>(31).fill(0);
  let code = 0;
  let previous = lengths[symbols[0]];
  for (const [i, s] of symbols.entries()) {
    const length = lengths[s];
    if (i > 0) code = (code + 1) * 2 ** (length - previous);
    previous = length;
    if (count[length]++ === 0) {
      first[length] = code;
      offset[length] = i;
    }
  }
  return { symbols, first, count, offset };
})();

/** Decodes a Huffman-coded string (RFC 7541 section 5.2); throws on EOS or bad padding. */
export function decodeHuffman(bytes: Uint8Array): string {
  let out = "";
  let code = 0;
  let length = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      length++;
      if (length < 5) continue;
      if (length > 30) throw new Error("HPACK: invalid Huffman code");
      const index = code - huffman.first[length];
      if (index >= 0 && index < huffman.count[length]) {
        const symbol = huffman.symbols[huffman.offset[length] + index];
        if (symbol === EOS) throw new Error("HPACK: EOS in a Huffman string");
        out += String.fromCharCode(symbol);
        code = 0;
        length = 0;
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (the most significant bits of EOS).
  if (length > 7 || code !== 2 ** length - 1) throw new Error("HPACK: invalid Huffman padding");
  return out;
}

/** The bytes of `text`, one per character (header text is octets). */
function octets(text: string): number[] {
  return [...text].map((c) => c.charCodeAt(0) & 0xff);
}

/** An integer with an `n`-bit prefix (RFC 7541 section 5.1), the prefix's high bits `mask`. */
function encodeInteger(value: number, n: number, mask: number): number[] {
  const max = 2 ** n - 1;
  if (value < max) return [mask | value];
  const out = [mask | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

/** A header block with every field a literal without indexing, names and values raw. */
export function encodeHeaders(fields: readonly HeaderField[]): Uint8Array {
  const out: number[] = [];
  for (const [name, value] of fields) {
    out.push(0x00);
    for (const text of [name, value]) {
      const bytes = octets(text);
      out.push(...encodeInteger(bytes.length, 7, 0x00), ...bytes);
    }
  }
  return Uint8Array.from(out);
}

/**
 * Decodes a connection's header blocks, in order (the dynamic table carries over from one block
 * to the next). Throws on anything malformed: the caller treats that as a connection error.
 */
export class HeaderDecoder {
  /** Newest entry first. */
  #dynamic: HeaderField[] = [];
  #size = 0;
  #limit: number;
  readonly #maxLimit: number;

  /** `maxTableSize`: the SETTINGS_HEADER_TABLE_SIZE this side announced (4096 by default). */
  constructor(maxTableSize = 4096) {
    this.#limit = this.#maxLimit = maxTableSize;
  }

  /** The fields of one complete header block. */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    let at = 0;
    const integer = (n: number): number => {
      if (at >= block.length) throw new Error("HPACK: truncated integer");
      const max = 2 ** n - 1;
      let value = block[at++] & max;
      if (value < max) return value;
      for (let shift = 1;; shift *= 128) {
        if (at >= block.length || shift > 2 ** 28) throw new Error("HPACK: bad integer");
        const byte = block[at++];
        value += (byte & 0x7f) * shift;
        if (byte < 128) return value;
      }
    };
    const string = (): string => {
      if (at >= block.length) throw new Error("HPACK: truncated string");
      const coded = (block[at] & 0x80) !== 0;
      const length = integer(7);
      if (at + length > block.length) throw new Error("HPACK: truncated string");
      const bytes = block.subarray(at, at += length);
      return coded ? decodeHuffman(bytes) : String.fromCharCode(...bytes);
    };
    const entry = (index: number): HeaderField => {
      const field = index <= STATIC_TABLE.length
        ? STATIC_TABLE[index - 1]
        : this.#dynamic[index - STATIC_TABLE.length - 1];
      if (index === 0 || !field) throw new Error(`HPACK: no table entry ${index}`);
      return field;
    };
    while (at < block.length) {
      const byte = block[at];
      if (byte & 0x80) {
        fields.push(entry(integer(7)));
      } else if (byte & 0x40) {
        const index = integer(6);
        const field: HeaderField = [index ? entry(index)[0] : string(), ""];
        field[1] = string();
        fields.push(field);
        this.#insert(field);
      } else if (byte & 0x20) {
        const limit = integer(5);
        if (limit > this.#maxLimit) throw new Error("HPACK: table size over the limit");
        this.#limit = limit;
        this.#evict(0);
      } else {
        const index = integer(4);
        const name = index ? entry(index)[0] : string();
        fields.push([name, string()]);
      }
    }
    return fields;
  }

  #insert(field: HeaderField): void {
    const size = field[0].length + field[1].length + 32;
    this.#evict(size);
    if (size <= this.#limit) {
      this.#dynamic.unshift(field);
      this.#size += size;
    }
  }

  /** Drops the oldest entries until `room` more octets fit. */
  #evict(room: number): void {
    while (this.#dynamic.length && this.#size + room > this.#limit) {
      const [name, value] = this.#dynamic.pop()!;
      this.#size -= name.length + value.length + 32;
    }
  }
}
