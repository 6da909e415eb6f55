/**
 * Workaround for a gap in Deno's `node:http2` server: an HTTP/2 request with neither
 * `:authority` nor `host` (what HAProxy's h2 health checks send unless a Host header is
 * configured) is refused with GOAWAY PROTOCOL_ERROR and no event, although RFC 9113 section 8.3.1
 * makes `:authority` optional. The check is nghttp2's HTTP messaging
 * (`nghttp2_http_on_request_headers` in nghttp2's `lib/nghttp2_http.c`), which Node's API has no
 * option to turn off; Deno 2.9.3 drives nghttp2 from `ext/node/ops/http2/session.rs` and its
 * `Http2Options::new` never calls `nghttp2_option_set_no_http_messaging`. No Deno issue is known
 * to us for it: when Deno (or nghttp2) accepts such requests, delete this module and its one
 * call in `mtls_listener.ts`.
 *
 * What it does: on an h2 socket, the bytes from the client are read frame by frame before
 * nghttp2 sees them; every header block is decoded (HPACK, with `hpack.js`, to follow the
 * client's dynamic table), and a request's block with neither `:authority` nor `host` gets a
 * `host` field appended as a literal that is not indexed, so the HPACK state of both ends stays
 * the same. Everything else passes unchanged. Anything it cannot parse is passed on unchanged,
 * and nghttp2 answers it as before.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import hpackModule from "hpack.js";

/** The parts of `hpack.js` (no type declarations of its own) used here. */
interface HpackDecoder {
  push(chunk: Buffer): void;
  isEmpty(): boolean;
  decodeBit(): number;
  decodeInt(): number;
  decodeStr(): number[];
}
interface HpackTable {
  lookup(index: number): { name: string; value: string; nameSize: number };
  add(name: string, value: string, nameSize: number, valueSize: number): void;
  updateSize(size: number): void;
}
const hpack = hpackModule as {
  decoder: { create(): HpackDecoder };
  table: { create(opts: { maxSize: number }): HpackTable };
  utils: { stringify(bytes: number[]): string };
};

const PREFACE_LENGTH = 24;
/** nghttp2's default SETTINGS_MAX_FRAME_SIZE, which the listener does not change. */
const MAX_FRAME = 16_384;
/** nghttp2's default SETTINGS_HEADER_TABLE_SIZE, which the listener does not change. */
const TABLE_SIZE = 4096;
const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

/**
 * Makes `socket` (an h2 connection, before the HTTP/2 session reads it) deliver its data with a
 * `host: <host>` field added to requests that have neither `:authority` nor `host`.
 */
export function fillMissingAuthority(socket: Socket, host: string): void {
  const filler = new AuthorityFiller(host);
  const emit = socket.emit as (this: Socket, event: string | symbol, ...args: unknown[]) => boolean;
  // Node streams hand every chunk to their consumers through emit("data").
  socket.emit = function (this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== "data") return emit.call(this, event, ...args);
    for (const chunk of filler.feed(args[0] as Uint8Array)) {
      emit.call(this, "data", Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    }
    return true;
  } as Socket["emit"];
}

/** The byte-level part of {@link fillMissingAuthority}: feed client bytes, get bytes to pass on. */
export class AuthorityFiller {
  #host: string;
  #prefaceLeft = PREFACE_LENGTH;
  #pending: Uint8Array = new Uint8Array(0);
  /** Frames of a header block still waiting for END_HEADERS. */
  #held: Uint8Array[] = [];
  #decoder = hpack.decoder.create();
  #table = hpack.table.create({ maxSize: TABLE_SIZE });
  /** Set once something could not be parsed: everything passes unchanged from then on. */
  #through = false;

  constructor(host: string) {
    this.#host = host;
  }

  /** Takes the next bytes from the client; returns what to pass on, in order. */
  feed(chunk: Uint8Array): Uint8Array[] {
    if (this.#through) return [chunk];
    const out: Uint8Array[] = [];
    if (this.#prefaceLeft > 0) {
      const n = Math.min(this.#prefaceLeft, chunk.length);
      out.push(chunk.subarray(0, n));
      this.#prefaceLeft -= n;
      chunk = chunk.subarray(n);
    }
    this.#pending = concat([this.#pending, chunk]);
    while (this.#pending.length >= 9) {
      const length = (this.#pending[0] << 16) | (this.#pending[1] << 8) | this.#pending[2];
      if (length > MAX_FRAME) return this.#giveUp(out);
      if (this.#pending.length < 9 + length) break;
      const frame = this.#pending.subarray(0, 9 + length);
      this.#pending = this.#pending.subarray(9 + length);
      const type = frame[3];
      if (this.#held.length > 0 && type !== CONTINUATION) return this.#giveUp(out, frame);
      if (type !== HEADERS && type !== CONTINUATION) {
        out.push(frame);
        continue;
      }
      this.#held.push(frame);
      if (!(frame[4] & END_HEADERS)) continue;
      try {
        out.push(...this.#block(this.#held));
      } catch {
        return this.#giveUp(out);
      }
      this.#held = [];
    }
    return out;
  }

  /** Passes everything held and pending on, and stops parsing. */
  #giveUp(out: Uint8Array[], ...frames: Uint8Array[]): Uint8Array[] {
    this.#through = true;
    out.push(...this.#held, ...frames, this.#pending);
    this.#held = [];
    this.#pending = new Uint8Array(0);
    return out;
  }

  /** The frames of one complete header block, with `host` added when a request needs it. */
  #block(frames: Uint8Array[]): Uint8Array[] {
    const [first] = frames;
    const flags = first[4];
    let payload = first.subarray(9);
    let pad = 0;
    if (flags & PADDED) {
      pad = payload[0];
      payload = payload.subarray(1);
    }
    const priority = flags & PRIORITY ? payload.subarray(0, 5) : new Uint8Array(0);
    if (pad > payload.length - priority.length) throw new Error("bad padding");
    const fragments = [payload.subarray(priority.length, payload.length - pad)];
    for (const f of frames.slice(1)) fragments.push(f.subarray(9));
    const block = concat(fragments);
    const names = this.#decode(block);
    const request = first[3] === HEADERS && names.has(":method") && names.get(":method") !==
        "CONNECT";
    if (!request || names.has(":authority") || names.has("host")) return frames;
    const filled = concat([block, literal("host", this.#host)]);
    const stream = new DataView(first.buffer, first.byteOffset).getUint32(5) & 0x7fffffff;
    const out: Uint8Array[] = [];
    let at = 0;
    let firstFrame = true;
    while (firstFrame || at < filled.length) {
      const room = MAX_FRAME - (firstFrame ? priority.length : 0);
      const part = filled.subarray(at, at + room);
      at += part.length;
      const last = at >= filled.length;
      const type = firstFrame ? HEADERS : CONTINUATION;
      const f = firstFrame ? (flags & (END_STREAM | PRIORITY)) : 0;
      out.push(frame(
        type,
        f | (last ? END_HEADERS : 0),
        stream,
        concat([
          firstFrame ? priority : new Uint8Array(0),
          part,
        ]),
      ));
      firstFrame = false;
    }
    return out;
  }

  /** Decodes a header block (updating the dynamic table); its names with their last value. */
  #decode(block: Uint8Array): Map<string, string> {
    const d = this.#decoder;
    const table = this.#table;
    const fields = new Map<string, string>();
    d.push(Buffer.from(block));
    while (!d.isEmpty()) {
      if (d.decodeBit()) {
        const entry = table.lookup(d.decodeInt());
        fields.set(entry.name, entry.value);
        continue;
      }
      const incremental = d.decodeBit();
      if (!incremental) {
        if (d.decodeBit()) { // dynamic table size update
          table.updateSize(d.decodeInt());
          continue;
        }
        d.decodeBit(); // never indexed
      }
      const index = d.decodeInt();
      let name: string;
      let nameSize: number;
      if (index === 0) {
        const raw = d.decodeStr();
        nameSize = raw.length;
        name = hpack.utils.stringify(raw);
      } else {
        const entry = table.lookup(index);
        name = entry.name;
        nameSize = entry.nameSize;
      }
      const rawValue = d.decodeStr();
      const value = hpack.utils.stringify(rawValue);
      if (incremental) table.add(name, value, nameSize, rawValue.length);
      fields.set(name, value);
    }
    return fields;
  }
}

/** An HPACK "literal header field without indexing, new name", without Huffman coding. */
function literal(name: string, value: string): Uint8Array {
  const enc = new TextEncoder();
  const n = enc.encode(name);
  const v = enc.encode(value);
  return concat([new Uint8Array([0x00]), hpackInt(n.length), n, hpackInt(v.length), v]);
}

/** An HPACK integer with a 7-bit prefix (the string length form, Huffman bit clear). */
function hpackInt(n: number): Uint8Array {
  if (n < 0x7f) return new Uint8Array([n]);
  const out = [0x7f];
  n -= 0x7f;
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return new Uint8Array(out);
}

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out[0] = (payload.length >> 16) & 0xff;
  out[1] = (payload.length >> 8) & 0xff;
  out[2] = payload.length & 0xff;
  out[3] = type;
  out[4] = flags;
  new DataView(out.buffer).setUint32(5, stream);
  out.set(payload, 9);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
