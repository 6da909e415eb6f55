/**
 * The fast path of the one-shot modes: `grpc.health.v1.Health/Check` over our own small HTTP/2
 * client (`h2_call.ts`, on `Deno.connect` / `Deno.connectTls`), which needs neither
 * `node:http2` nor grpc-js and so starts a probe in a fraction of the time. It answers only when
 * the upstream's answer is definitive (HTTP 200, a gRPC content type, a body that ended with
 * exactly one uncompressed message that decodes as `HealthCheckResponse`, and `grpc-status: 0`
 * in the trailers); anything else is handed to the grpc-js client (`upstream.ts`), which decides
 * as it always did. See docs/performance.md ("Probe start-up") for why.
 *
 * @module
 */

import { decodeHealthCheckResponse, encodeHealthCheckRequest } from "./health_codec.ts";
import { H2Connection, type H2Target } from "./h2_call.ts";
import type { HeaderField } from "./hpack.ts";
import type { CheckResult } from "./status.ts";
import {
  CHECK_METHOD,
  dialTarget,
  outcomeOfStatus,
  type UpstreamOptions,
} from "./upstream_options.ts";
import { grpcJsVersion } from "./version.ts";

/** The largest response message accepted, as the grpc-js channel's receive limit. */
const MAX_MESSAGE = 64 * 1024;

/** What the fast path came to: an answer, or why grpc-js must decide. */
export type FastAnswer = { result: CheckResult } | { fallback: string };

/** The `grpc-timeout` header grpc-js sends for a deadline `ms` from now. */
export function grpcTimeoutHeader(ms: number): string {
  const units: [string, number][] = [["m", 1], ["S", 1000], ["M", 60_000], ["H", 3_600_000]];
  for (const [unit, factor] of units) {
    const amount = Math.ceil(Math.max(ms, 0) / factor);
    if (amount < 1e8) return `${amount}${unit}`;
  }
  return "99999999H";
}

/**
 * The URL to call for `opts`, or undefined when its target is not a plain `host:port` that is
 * dialled, named and authorised (`:authority`) exactly as grpc-js does.
 */
export function checkUrl(opts: Pick<UpstreamOptions, "addr" | "tls">): URL | undefined {
  const target = dialTarget(opts.addr);
  if (!/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(target)) return undefined;
  try {
    const url = new URL(`${opts.tls ? "https" : "http"}://${target}${CHECK_METHOD}`);
    // A name or port URL parsing rewrites (case, a default port) would change the authority.
    return url.host === target ? url : undefined;
  } catch {
    return undefined;
  }
}

/** Why the fast path cannot be used with `opts`, or undefined when it can. */
export function fastPathUnsupported(opts: UpstreamOptions): string | undefined {
  if (opts.gzip) return "-gzip";
  if (opts.tls && opts.tlsNoVerify) return "-tls-no-verify";
  if (opts.tls && opts.tlsServerName) return "-tls-server-name";
  if (!checkUrl(opts)) return "the target is not host:port";
  return undefined;
}

/**
 * Reads the TLS files: undefined without TLS, false when anything is wrong with them (grpc-js
 * then says what).
 * A client certificate and key are checked as grpc-js's path checks them (that loads
 * node:crypto, so only then); a CA file that is PEM but not a certificate makes the handshake
 * fail, which hands the check to grpc-js as well.
 */
async function tlsMaterial(opts: UpstreamOptions): Promise<H2Target["tls"] | false> {
  if (!opts.tls) return undefined;
  try {
    const read = (path: string) => {
      if (!path) return undefined;
      const text = Deno.readTextFileSync(path);
      if (!text.includes("-----BEGIN ")) throw new Error("no PEM data");
      return text;
    };
    const [ca, cert, key] = [
      read(opts.tlsCaCert),
      read(opts.tlsClientCert),
      read(opts.tlsClientKey),
    ];
    if ((cert === undefined) !== (key === undefined)) return false;
    if (cert !== undefined) {
      const { tlsMaterialProblem } = await import("./tls_material.ts");
      if (tlsMaterialProblem({ ca, cert, key })) return false;
    }
    return {
      ...(ca === undefined ? {} : { caCerts: [ca] }),
      ...(cert === undefined ? {} : { cert, key }),
    };
  } catch {
    return false;
  }
}

/** One gRPC length-prefixed message (uncompressed). */
function grpcFrame(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** Health checks on the fast path; one connection for all of a run's checks. */
export class FastHealth {
  readonly #target: H2Target;
  readonly #headers: HeaderField[];
  readonly #rpcTimeoutMs: number;
  #connection?: Promise<H2Connection>;

  private constructor(url: URL, tls: H2Target["tls"], opts: UpstreamOptions) {
    this.#target = {
      hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: Number(url.port),
      tls,
    };
    this.#rpcTimeoutMs = opts.rpcTimeoutMs;
    // What grpc-js sends for a unary call (its own headers, then the metadata).
    const userAgent = [opts.userAgent, `grpc-node-js/${grpcJsVersion}`].filter((s) => s)
      .join(" ");
    this.#headers = [
      [":method", "POST"],
      [":scheme", url.protocol.slice(0, -1)],
      [":path", url.pathname],
      [":authority", url.host],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ["user-agent", userAgent],
      ["grpc-accept-encoding", "identity,deflate,gzip"],
      ...opts.rpcHeaders.map(([n, v]): HeaderField => [n.toLowerCase(), v]),
    ];
  }

  /** The fast path for `opts`, or why it cannot be used. */
  static async open(opts: UpstreamOptions): Promise<FastHealth | { unsupported: string }> {
    const unsupported = fastPathUnsupported(opts);
    if (unsupported) return { unsupported };
    const tls = await tlsMaterial(opts);
    if (tls === false) return { unsupported: "the TLS files need grpc-js's checks" };
    return new FastHealth(checkUrl(opts)!, tls, opts);
  }

  /** Checks `service`; never rejects. Only a definitive answer is a result. */
  async check(service: string, signal: AbortSignal): Promise<FastAnswer> {
    try {
      this.#connection ??= H2Connection.open(this.#target, signal);
      const connection = await this.#connection;
      const headers: HeaderField[] = [
        ...this.#headers,
        ["grpc-timeout", grpcTimeoutHeader(this.#rpcTimeoutMs)],
      ];
      const body = grpcFrame(encodeHealthCheckRequest(service));
      const res = await connection.request(headers, body, 5 + MAX_MESSAGE, signal);
      const field = (fields: HeaderField[] | undefined, name: string) =>
        fields?.find(([n]) => n === name)?.[1];
      const status = field(res.headers, ":status");
      const type = field(res.headers, "content-type") ?? "";
      if (status !== "200" || !/^application\/grpc(?:[+;]|$)/.test(type)) {
        return { fallback: `HTTP ${status} ${type || "without a content type"}` };
      }
      const grpcStatus = field(res.trailers ?? res.headers, "grpc-status");
      if (grpcStatus !== "0") return { fallback: `grpc-status ${grpcStatus ?? "missing"}` };
      const data = res.data;
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      if (data.length < 5 || data.length !== 5 + view.getUint32(1)) {
        return { fallback: "not exactly one message" };
      }
      if (data[0] !== 0) return { fallback: "a compressed message" };
      const number = decodeHealthCheckResponse(data.subarray(5));
      return { result: { service, outcome: outcomeOfStatus(number) } };
    } catch (err) {
      return { fallback: err instanceof Error ? err.message : String(err) };
    }
  }

  /** Closes the connection. */
  close(): void {
    this.#connection?.then((c) => c.close(), () => {});
  }
}
