/**
 * The probe's HTTP/2 client (RFC 9113) on `Deno.connect` (and Deno's TLS): one connection,
 * one request at a time, just what a unary gRPC call needs. It exists because every HTTP/2
 * client Deno offers costs start-up time: `node:http2` loads Node compatibility, and even Deno's
 * own `fetch` adds ~13 ms and ~5 MB to a process that sends one request (docs/performance.md).
 * Anything it does not expect (a reset, GOAWAY, a push, a frame or header block it cannot read)
 * is an error, and the caller hands the check to grpc-js.
 *
 * Deno gap: Deno leaves Nagle's algorithm on for its client sockets (denoland/deno#35581), so a
 * request written right after a TLS handshake waits ~40 ms for the server's delayed ACK. We
 * dial with `Deno.connect`, call `setNoDelay(true)` and upgrade with `Deno.startTls`; but
 * `startTls` takes no client certificate, so mutual TLS still goes through `Deno.connectTls`
 * and may pay the wait. When `connectTls` can set `TCP_NODELAY`, use it for every TLS dial.
 *
 * @module
 */

import { concatBytes } from "./health_codec.ts";
import { encodeHeaders, HeaderDecoder, type HeaderField } from "./hpack.ts";

/** Where to connect; `tls` offers ALPN `h2` and verifies the server against `caCerts`. */
export interface H2Target {
  hostname: string;
  port: number;
  tls?: { caCerts?: string[]; cert?: string; key?: string };
}

/** What came back on a stream: the response headers, the DATA, and trailers when sent. */
export interface H2Exchange {
  headers: HeaderField[];
  data: Uint8Array;
  /** Undefined when the response headers ended the stream (gRPC's "trailers-only"). */
  trailers?: HeaderField[];
}

/** The connection preface a client sends first. */
export const H2_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Frame types (RFC 9113 section 6). */
export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;
/** The largest frame either side may send without a SETTINGS change (we announce none). */
const MAX_FRAME = 16_384;
/** Our receive window: room for the largest accepted message, so no WINDOW_UPDATE is owed. */
const WINDOW = 1 << 20;
// Settings we send: SETTINGS_ENABLE_PUSH 0 (0x2), SETTINGS_INITIAL_WINDOW_SIZE WINDOW (0x4).

/** One frame: 9-byte header (length, type, flags, stream) and `payload`. */
export function h2Frame(
  type: number,
  flags: number,
  stream: number,
  payload: Uint8Array = new Uint8Array(),
): Uint8Array {
  const frame = new Uint8Array(9 + payload.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, (payload.length << 8) | type);
  view.setUint8(4, flags);
  view.setUint32(5, stream & 0x7fffffff);
  frame.set(payload, 9);
  return frame;
}

const u32 = (view: DataView, at = 0) => view.getUint32(at) & 0x7fffffff;

function u32Bytes(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** A SETTINGS payload: (identifier, value) pairs. */
function settingsPayload(settings: [number, number][]): Uint8Array {
  const out = new Uint8Array(6 * settings.length);
  const view = new DataView(out.buffer);
  for (const [i, [id, value]] of settings.entries()) {
    view.setUint16(6 * i, id);
    view.setUint32(6 * i + 2, value);
  }
  return out;
}

/** Resolves as `promise`, or rejects when `signal` aborts first (then disposes of the result). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, dispose: (v: T) => void) {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.then(dispose, () => {});
      reject(new Error("cancelled"));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Closes `conn`, which may already be closed (or handed to `Deno.startTls`). */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** An HTTP/2 connection that sends one request at a time. */
export class H2Connection {
  readonly #conn: Deno.Conn;
  readonly #decoder = new HeaderDecoder();
  #buffered: Uint8Array = new Uint8Array();
  #nextStream = 1;
  /**
   * The preface and our settings, sent with the first request: one write, so that Nagle's
   * algorithm cannot hold the request back until the server acknowledges the preface.
   */
  #preface?: Uint8Array = concatBytes([
    H2_PREFACE,
    h2Frame(FrameType.SETTINGS, 0, 0, settingsPayload([[0x2, 0], [0x4, WINDOW]])),
    h2Frame(FrameType.WINDOW_UPDATE, 0, 0, u32Bytes(WINDOW - 65_535)),
  ]);

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connects and, on TLS, checks that the server chose HTTP/2 (ALPN). */
  static async open(target: H2Target, signal: AbortSignal): Promise<H2Connection> {
    const { hostname, port, tls } = target;
    let conn: Deno.Conn;
    if (tls?.cert) {
      // Only connectTls takes a client certificate, and it leaves Nagle on (see above).
      conn = await abortable(
        Deno.connectTls({ hostname, port, ...tls, alpnProtocols: ["h2"] }),
        signal,
        (c) => c.close(),
      );
    } else {
      const tcp = await abortable(Deno.connect({ hostname, port }), signal, (c) => c.close());
      tcp.setNoDelay(true);
      conn = tls
        ? await abortable(
          Deno.startTls(tcp, { hostname, caCerts: tls.caCerts, alpnProtocols: ["h2"] }),
          signal,
          (c) => c.close(),
        ).catch((err) => {
          closeQuietly(tcp);
          throw err;
        })
        : tcp;
    }
    if (tls) {
      const tlsConn = conn as Deno.TlsConn;
      const handshake = await abortable(tlsConn.handshake(), signal, () => {}).catch((err) => {
        closeQuietly(tlsConn);
        throw err;
      });
      if (handshake.alpnProtocol !== "h2") {
        closeQuietly(tlsConn);
        throw new Error("the server did not negotiate h2 (ALPN)");
      }
    }
    return new H2Connection(conn);
  }

  /**
   * Sends a request (headers, then `body` ending the stream) and reads its answer. Rejects on
   * anything unexpected, on more than `maxData` octets of DATA, and when `signal` aborts (which
   * closes the connection).
   */
  async request(
    fields: readonly HeaderField[],
    body: Uint8Array,
    maxData: number,
    signal: AbortSignal,
  ): Promise<H2Exchange> {
    const stream = this.#nextStream;
    this.#nextStream += 2;
    const block = encodeHeaders(fields);
    if (block.length > MAX_FRAME || body.length > MAX_FRAME) {
      throw new Error("a request larger than one frame");
    }
    if (signal.aborted) throw new Error("cancelled");
    const onAbort = () => this.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const preface = this.#preface ?? new Uint8Array();
      this.#preface = undefined;
      await this.#write(
        preface,
        h2Frame(FrameType.HEADERS, END_HEADERS, stream, block),
        h2Frame(FrameType.DATA, END_STREAM, stream, body),
      );
      return await this.#response(stream, maxData);
    } catch (err) {
      throw signal.aborted ? new Error("cancelled") : err;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Closes the connection; safe to call more than once. */
  close(): void {
    closeQuietly(this.#conn);
  }

  async #response(stream: number, maxData: number): Promise<H2Exchange> {
    let headers: HeaderField[] | undefined;
    const data: Uint8Array[] = [];
    let length = 0;
    // A header block in progress: its fragments and whether it ends the stream.
    let block: { fragments: Uint8Array[]; stream: number; ends: boolean } | undefined;
    for (;;) {
      const { type, flags, id, payload } = await this.#frame();
      if (block && type !== FrameType.CONTINUATION) throw new Error("a header block interrupted");
      switch (type) {
        case FrameType.SETTINGS:
          if (!(flags & ACK)) await this.#write(h2Frame(FrameType.SETTINGS, ACK, 0));
          continue;
        case FrameType.PING:
          if (!(flags & ACK)) await this.#write(h2Frame(FrameType.PING, ACK, 0, payload));
          continue;
        case FrameType.GOAWAY:
          throw new Error(`GOAWAY (error ${new DataView(payload.buffer).getUint32(4)})`);
        case FrameType.RST_STREAM:
          throw new Error(`RST_STREAM (error ${new DataView(payload.buffer).getUint32(0)})`);
        case FrameType.PUSH_PROMISE:
          throw new Error("a PUSH_PROMISE although push is disabled");
        case FrameType.DATA: {
          if (id !== stream || !headers) throw new Error("DATA before the response headers");
          const chunk = unpadded(payload, flags);
          length += chunk.length;
          if (length > maxData) throw new Error("more DATA than one accepted message");
          data.push(chunk);
          if (flags & END_STREAM) return { headers, data: concatBytes(data) };
          continue;
        }
        case FrameType.HEADERS: {
          let fragment = unpadded(payload, flags);
          if (flags & PRIORITY_FLAG) fragment = fragment.subarray(5);
          block = { fragments: [fragment], stream: id, ends: (flags & END_STREAM) !== 0 };
          break;
        }
        case FrameType.CONTINUATION:
          if (!block || id !== block.stream) throw new Error("a CONTINUATION out of place");
          block.fragments.push(payload);
          break;
        default:
          continue; // WINDOW_UPDATE, PRIORITY and unknown types need nothing
      }
      if (!(flags & END_HEADERS)) continue;
      // Every block is decoded, whatever its stream, to keep the HPACK table in step.
      const fields = this.#decoder.decode(concatBytes(block.fragments));
      const { ends } = block;
      block = undefined;
      if (id !== stream) throw new Error(`HEADERS on stream ${id}`);
      if (!headers) {
        headers = fields;
        if (ends) return { headers, data: new Uint8Array() };
      } else if (ends) {
        return { headers, data: concatBytes(data), trailers: fields };
      } else {
        throw new Error("a second header block that does not end the stream");
      }
    }
  }

  /** The next frame, read whole. */
  async #frame(): Promise<{ type: number; flags: number; id: number; payload: Uint8Array }> {
    for (;;) {
      const have = this.#buffered;
      if (have.length >= 9) {
        const view = new DataView(have.buffer, have.byteOffset, have.byteLength);
        const length = view.getUint32(0) >>> 8;
        if (length > MAX_FRAME) throw new Error(`a frame of ${length} octets (limit ${MAX_FRAME})`);
        if (have.length >= 9 + length) {
          this.#buffered = have.subarray(9 + length);
          return {
            type: have[3],
            flags: have[4],
            id: u32(view, 5),
            payload: have.slice(9, 9 + length),
          };
        }
      }
      const chunk = new Uint8Array(MAX_FRAME + 9);
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("the connection closed");
      this.#buffered = concatBytes([have, chunk.subarray(0, n)]);
    }
  }

  async #write(...parts: Uint8Array[]): Promise<void> {
    const bytes = concatBytes(parts);
    for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
  }
}

/** A DATA or HEADERS payload without its padding (RFC 9113 section 6.1). */
function unpadded(payload: Uint8Array, flags: number): Uint8Array {
  if (!(flags & PADDED)) return payload;
  const pad = payload[0];
  if (payload.length < 1 || pad >= payload.length) throw new Error("bad padding");
  return payload.subarray(1, payload.length - pad);
}
