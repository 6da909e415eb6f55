/**
 * A hand-written protobuf codec for the messages of `grpc.health.v1.Health/Check`, `/Watch` and
 * `/List` (gRFC A90). It keeps protobufjs and proto-loader (~40 ms of import) off the start-up path;
 * `health_codec_test.ts` checks it against `proto/health.proto` through protobufjs.
 *
 * @module
 */

/** `HealthCheckResponse.ServingStatus` values, by number, as in `proto/health.proto`. */
export const servingStatusNames = [
  "UNKNOWN",
  "SERVING",
  "NOT_SERVING",
  "SERVICE_UNKNOWN",
] as const;

/** A serving status name from the proto. */
export type ServingStatus = typeof servingStatusNames[number];

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/** Encodes `HealthCheckRequest { string service = 1; }`. The empty name encodes to no bytes. */
export function encodeHealthCheckRequest(service: string): Uint8Array {
  if (service === "") return new Uint8Array(0);
  const name = encoder.encode(service);
  const out = new Uint8Array(1 + varintLength(name.length) + name.length);
  out[0] = 0x0a; // field 1, wire type 2 (length-delimited)
  out.set(name, writeVarint(out, 1, name.length));
  return out;
}

/** A protobuf reader over one message: just enough for the health messages. */
class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new RangeError("truncated varint");
      const b = this.buf[this.pos++];
      // Values beyond 2^53 lose precision; no field here can be that large when valid.
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new RangeError("varint longer than 10 bytes");
  }

  /** An int32 varint: the low 32 bits, signed (negative values are sign-extended on the wire). */
  int32(): number {
    let low = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new RangeError("truncated varint");
      const b = this.buf[this.pos++];
      if (i < 5) low |= (b & 0x7f) << (7 * i);
      if ((b & 0x80) === 0) return low | 0;
    }
    throw new RangeError("varint longer than 10 bytes");
  }

  bytes(): Uint8Array {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.buf.length) throw new RangeError("truncated length-delimited field");
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.bytes();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new RangeError(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.buf.length) throw new RangeError("truncated fixed-width field");
    this.pos += n;
  }
}

/** Decodes `HealthCheckRequest`; used by test servers and kept beside its encoder. */
export function decodeHealthCheckRequest(buf: Uint8Array): string {
  const r = new Reader(buf);
  let service = "";
  while (!r.done) {
    const tag = r.varint();
    if (tag === 0x0a) service = decoder.decode(r.bytes());
    else r.skip(tag & 7);
  }
  return service;
}

/**
 * Decodes `HealthCheckResponse { ServingStatus status = 1; }` to the status number. Unknown
 * fields are skipped; an enum value the proto does not name is returned as is (the caller
 * treats it as not SERVING). Throws `RangeError` on malformed input.
 */
export function decodeHealthCheckResponse(buf: Uint8Array): number {
  const r = new Reader(buf);
  let status = 0;
  while (!r.done) {
    const tag = r.varint();
    if (tag === 0x08) status = r.int32();
    else r.skip(tag & 7);
  }
  return status;
}

/** Encodes `HealthCheckResponse` with the given status number (for test servers). */
export function encodeHealthCheckResponse(status: number): Uint8Array {
  if (status === 0) return new Uint8Array(0);
  const out = new Uint8Array(1 + varintLength(status));
  out[0] = 0x08;
  writeVarint(out, 1, status);
  return out;
}

/**
 * Decodes `HealthListResponse { map<string, HealthCheckResponse> statuses = 1; }` to
 * `[service, status number]` pairs in wire order. As protobuf maps do, a repeated key keeps its
 * last value; an entry without a key is `""`, without a value status 0 (UNKNOWN). Unknown fields
 * are skipped. Throws `RangeError` (or `TypeError` for a name that is not UTF-8) on malformed
 * input. The caller bounds the input (grpc-js's receive limit).
 */
export function decodeHealthListResponse(buf: Uint8Array): [string, number][] {
  const r = new Reader(buf);
  const statuses = new Map<string, number>();
  while (!r.done) {
    const tag = r.varint();
    if (tag !== 0x0a) {
      r.skip(tag & 7);
      continue;
    }
    const entry = new Reader(r.bytes());
    let service = "";
    let status = 0;
    while (!entry.done) {
      const t = entry.varint();
      if (t === 0x0a) service = decoder.decode(entry.bytes());
      else if (t === 0x12) status = decodeHealthCheckResponse(entry.bytes());
      else entry.skip(t & 7);
    }
    statuses.set(service, status);
  }
  return [...statuses];
}

/** Encodes `HealthListResponse` from `[service, status number]` pairs (for test servers). */
export function encodeHealthListResponse(statuses: Iterable<[string, number]>): Uint8Array {
  const entries: Uint8Array[] = [];
  for (const [service, status] of statuses) {
    const name = encoder.encode(service);
    const value = encodeHealthCheckResponse(status);
    const length = 1 + varintLength(name.length) + name.length + 1 + varintLength(value.length) +
      value.length;
    const entry = new Uint8Array(1 + varintLength(length) + length);
    entry[0] = 0x0a; // statuses, field 1, length-delimited
    let at = writeVarint(entry, 1, length);
    entry[at++] = 0x0a; // key, field 1
    at = writeVarint(entry, at, name.length);
    entry.set(name, at);
    at += name.length;
    entry[at++] = 0x12; // value, field 2
    at = writeVarint(entry, at, value.length);
    entry.set(value, at);
    entries.push(entry);
  }
  return concatBytes(entries);
}

/** `parts` one after another in one array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The name of a status number, or `UNKNOWN` for numbers the proto does not define. */
export function servingStatusName(status: number): ServingStatus {
  return servingStatusNames[status] ?? "UNKNOWN";
}
