/**
 * The fast path of the one-shot modes: `grpc.health.v1.Health/Check` over Deno's own HTTP/2
 * client (`fetch` with `Deno.createHttpClient`), which needs neither `node:http2` nor grpc-js and
 * so starts a probe in a fraction of the time. It answers only when the upstream's answer is
 * definitive (HTTP 200, a gRPC content type, no error status in the headers, a body that ended
 * cleanly with exactly one uncompressed message that decodes as `HealthCheckResponse`);
 * anything else is handed to the grpc-js client (`upstream.ts`), which decides as it always did.
 * See docs/performance.md ("Probe start-up") for why and for the differences.
 *
 * @module
 */

import {
  concatBytes,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
} from "./health_codec.ts";
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

/** Proxy variables `fetch` would honour; grpc-js is told to ignore them (README). */
const PROXY_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"];

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
 * The URL to call for `opts`, or undefined when its target is not a plain `host:port` that
 * `fetch` would dial, name and authorise (`:authority`) exactly as grpc-js does.
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
  const names = opts.rpcHeaders.map(([name]) => name);
  // fetch joins repeated names into one header line; grpc-js sends each.
  if (new Set(names).size !== names.length) return "a repeated -rpc-header name";
  try {
    const proxied = PROXY_VARIABLES.some((v) =>
      Deno.env.get(v) !== undefined || Deno.env.get(v.toLowerCase()) !== undefined
    );
    if (proxied) return "a proxy variable is set (fetch would use it)";
  } catch {
    return "proxy variables cannot be read";
  }
  return undefined;
}

/**
 * Reads the TLS files; undefined when anything is wrong with them (grpc-js then says what).
 * A client certificate and key are checked as grpc-js's path checks them (that loads
 * node:crypto, so only then); a CA file that is PEM but not a certificate makes the handshake
 * fail, which hands the check to grpc-js as well.
 */
async function tlsMaterial(
  opts: UpstreamOptions,
): Promise<Deno.CreateHttpClientOptions | undefined> {
  if (!opts.tls) return {};
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
    if ((cert === undefined) !== (key === undefined)) return undefined;
    if (cert !== undefined) {
      const { tlsMaterialProblem } = await import("./tls_material.ts");
      if (tlsMaterialProblem({ ca, cert, key })) return undefined;
    }
    return {
      ...(ca === undefined ? {} : { caCerts: [ca] }),
      ...(cert === undefined ? {} : { cert, key }),
    };
  } catch {
    return undefined;
  }
}

/** One gRPC length-prefixed message (uncompressed). */
function grpcFrame(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** Reads the whole body; undefined when it is larger than one accepted message. */
async function readBody(body: ReadableStream<Uint8Array>): Promise<Uint8Array | undefined> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > 5 + MAX_MESSAGE) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return concatBytes(chunks);
}

/** Health checks over Deno's native HTTP/2 client; one connection for all of a run's checks. */
export class FastHealth {
  readonly #url: URL;
  readonly #client: Deno.HttpClient;
  readonly #headers: [string, string][];
  readonly #rpcTimeoutMs: number;

  private constructor(url: URL, client: Deno.HttpClient, opts: UpstreamOptions) {
    this.#url = url;
    this.#client = client;
    this.#rpcTimeoutMs = opts.rpcTimeoutMs;
    // What grpc-js sends for a unary call (its own headers, then the metadata).
    const userAgent = [opts.userAgent, `grpc-node-js/${grpcJsVersion}`].filter((s) => s)
      .join(" ");
    this.#headers = [
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ["user-agent", userAgent],
      ["grpc-accept-encoding", "identity,deflate,gzip"],
      // fetch would otherwise offer HTTP compression, which grpc-js never does.
      ["accept-encoding", "identity"],
      ...opts.rpcHeaders.map(([n, v]) => [n, v] as [string, string]),
    ];
  }

  /** The fast path for `opts`, or why it cannot be used. */
  static async open(opts: UpstreamOptions): Promise<FastHealth | { unsupported: string }> {
    const unsupported = fastPathUnsupported(opts);
    if (unsupported) return { unsupported };
    const tls = await tlsMaterial(opts);
    if (!tls) return { unsupported: "the TLS files need grpc-js's checks" };
    try {
      const client = Deno.createHttpClient({ http1: false, http2: true, ...tls });
      return new FastHealth(checkUrl(opts)!, client, opts);
    } catch (err) {
      return { unsupported: `no HTTP/2 client: ${(err as Error).message}` };
    }
  }

  /** Checks `service`; never rejects. Only a definitive answer is a result. */
  async check(service: string, signal: AbortSignal): Promise<FastAnswer> {
    try {
      const headers = new Headers(this.#headers);
      headers.set("grpc-timeout", grpcTimeoutHeader(this.#rpcTimeoutMs));
      const res = await fetch(this.#url, {
        method: "POST",
        client: this.#client,
        headers,
        body: grpcFrame(encodeHealthCheckRequest(service)),
        signal,
      });
      const status = res.headers.get("grpc-status");
      const type = res.headers.get("content-type") ?? "";
      if (res.status !== 200 || !/^application\/grpc(?:[+;]|$)/.test(type) || !res.body) {
        await res.body?.cancel().catch(() => {});
        return { fallback: `HTTP ${res.status} ${type || "without a content type"}` };
      }
      if (status !== null && status !== "0") {
        await res.body.cancel().catch(() => {});
        return { fallback: `grpc-status ${status}` };
      }
      const body = await readBody(res.body);
      if (!body) return { fallback: "a message larger than accepted" };
      const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
      if (body.length < 5 || body.length !== 5 + view.getUint32(1)) {
        return { fallback: "not exactly one message" };
      }
      if (body[0] !== 0) return { fallback: "a compressed message" };
      const number = decodeHealthCheckResponse(body.subarray(5));
      return { result: { service, outcome: outcomeOfStatus(number) } };
    } catch (err) {
      return { fallback: err instanceof Error ? err.message : String(err) };
    }
  }

  /** Closes the connection. */
  close(): void {
    this.#client.close();
  }
}
